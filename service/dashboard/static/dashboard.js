// Draws the dashboard's charts from the JSON embedded in the page (no inline script: the page's CSP forbids it).
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const COLORS = { batchnorm: "#1f77b4", plain: "#d62728" };
  const LABELS = { batchnorm: "with BatchNorm", plain: "without BatchNorm" };

  // Chart.js has no error bars of its own: this small plugin draws mean +- std whiskers
  // for datasets that carry an `errorBars` array (one half-width per point).
  const errorBars = {
    id: "errorBars",
    afterDatasetsDraw(chart) {
      const ctx = chart.ctx;
      chart.data.datasets.forEach((ds, i) => {
        if (!ds.errorBars || !chart.isDatasetVisible(i)) return;
        const meta = chart.getDatasetMeta(i);
        const y = chart.scales[meta.yAxisID];
        ctx.save();
        ctx.strokeStyle = ds.borderColor;
        const shift = i === 0 ? -3 : 3; // side by side when both series sit at the same x
        ctx.lineWidth = 1.5;
        meta.data.forEach((pt, j) => {
          const v = ds.data[j];
          const e = ds.errorBars[j];
          if (v === null || e === null || e === undefined) return;
          const value = typeof v === "object" ? v.y : v;
          const top = y.getPixelForValue(value + e);
          const bottom = y.getPixelForValue(value - e);
          ctx.beginPath();
          const x = pt.x + shift;
          ctx.moveTo(x, top); ctx.lineTo(x, bottom);
          ctx.moveTo(x - 4, top); ctx.lineTo(x + 4, top);
          ctx.moveTo(x - 4, bottom); ctx.lineTo(x + 4, bottom);
          ctx.stroke();
        });
        ctx.restore();
      });
    },
  };

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

  function sweepChart(canvasId, optimizer) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || !data.study || !data.study.sweep) return;
    const cells = data.study.sweep.filter((c) => c.optimizer === optimizer);
    const rates = [...new Set(cells.map((c) => c.learning_rate))].sort((a, b) => a - b);
    // The axis must include the whiskers, not only the means, or the error bars are cut off.
    const low = Math.min(...cells.map((c) => c.accuracy.mean - c.accuracy.std));
    const high = Math.max(...cells.map((c) => c.accuracy.mean + c.accuracy.std));
    const pad = 0.01;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: rates.map(String),
        datasets: ["batchnorm", "plain"].map((name) => {
          const byRate = rates.map((lr) => cells.find((c) => c.variant === name && c.learning_rate === lr));
          return {
            label: LABELS[name],
            data: byRate.map((c) => (c ? c.accuracy.mean : null)),
            errorBars: byRate.map((c) => (c ? c.accuracy.std : null)),
            borderColor: COLORS[name],
            backgroundColor: COLORS[name],
            pointRadius: 4,
            borderWidth: 1.5,
          };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { title: { display: true, text: optimizer.toUpperCase() + " learning rate" } },
          y: {
            min: Math.max(0, Math.floor((low - pad) * 100) / 100),
            max: Math.min(1, Math.ceil((high + pad) * 100) / 100),
            title: { display: true, text: "final validation accuracy (mean ± std)" },
          },
        },
      },
      plugins: [errorBars],
    });
    canvas.dataset.rendered = "true";
  }

  curveChart("chart-train-loss", "train_loss", "training loss (BCE)");
  curveChart("chart-val-loss", "val_loss", "validation loss (BCE)");
  curveChart("chart-train-accuracy", "train_accuracy", "training accuracy");
  curveChart("chart-val-accuracy", "val_accuracy", "validation accuracy");
  sweepChart("chart-sweep-adam", "adam");
  sweepChart("chart-sweep-sgd", "sgd");
  document.body.dataset.chartsReady = "true";
})();
