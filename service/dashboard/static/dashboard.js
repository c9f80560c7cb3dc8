// Draws the dashboard's charts from the JSON embedded in the page (no inline script: the page's CSP forbids it).
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const COLORS = { batchnorm: "#1f77b4", plain: "#d62728" };
  const LABELS = { batchnorm: "with BatchNorm", plain: "without BatchNorm" };

  function curveChart(canvasId, key, yLabel) {
    const canvas = document.getElementById(canvasId);
    const names = Object.keys(data.models);
    const epochs = data.models[names[0]].curves[key].map((_, i) => i + 1);
    const chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: epochs,
        datasets: names.map((name) => ({
          label: LABELS[name] || name,
          data: data.models[name].curves[key],
          borderColor: COLORS[name],
          backgroundColor: COLORS[name],
          pointRadius: 0,
          borderWidth: 1.5,
          tension: 0,
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: "epoch" }, ticks: { maxTicksLimit: 10 } },
          y: { title: { display: true, text: yLabel } },
        },
      },
    });
    canvas.dataset.rendered = "true";
    return chart;
  }

  curveChart("chart-train-loss", "train_loss", "training loss (BCE)");
  curveChart("chart-val-loss", "val_loss", "validation loss (BCE)");
  curveChart("chart-train-accuracy", "train_accuracy", "training accuracy");
  curveChart("chart-val-accuracy", "val_accuracy", "validation accuracy");
  document.body.dataset.chartsReady = "true";
})();
