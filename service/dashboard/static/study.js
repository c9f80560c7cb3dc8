// Draws the study's charts from the JSON embedded in the page (dashboard.js draws the served models' charts).
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const study = data.study;
  const ARMS = {
    "batchnorm/raw": { label: "BN, raw inputs", color: "#1f77b4", dash: [] },
    "plain/raw": { label: "plain, raw inputs", color: "#d62728", dash: [] },
    "batchnorm/standardized": { label: "BN, standardized", color: "#1f77b4", dash: [6, 4] },
    "plain/standardized": { label: "plain, standardized", color: "#d62728", dash: [6, 4] },
  };
  const style = (key) => ARMS[key] || { label: key, color: "#555", dash: [] };

  // Chart.js has no error bars of its own: this small plugin draws mean +- std whiskers
  // for datasets that carry an `errorBars` array (one half-width per point).
  const errorBars = {
    id: "errorBars",
    afterDatasetsDraw(chart) {
      const ctx = chart.ctx;
      const n = chart.data.datasets.length;
      chart.data.datasets.forEach((ds, i) => {
        if (!ds.errorBars || !chart.isDatasetVisible(i)) return;
        const meta = chart.getDatasetMeta(i);
        const y = chart.scales[meta.yAxisID];
        ctx.save();
        ctx.strokeStyle = ds.borderColor;
        ctx.lineWidth = 1.5;
        const shift = (i - (n - 1) / 2) * 4; // side by side when several series sit at the same x
        meta.data.forEach((pt, j) => {
          const v = ds.data[j];
          const e = ds.errorBars[j];
          if (v === null || e === null || e === undefined) return;
          const top = y.getPixelForValue(v + e);
          const bottom = y.getPixelForValue(v - e);
          const x = pt.x + shift;
          ctx.beginPath();
          ctx.moveTo(x, top); ctx.lineTo(x, bottom);
          ctx.moveTo(x - 3, top); ctx.lineTo(x + 3, top);
          ctx.moveTo(x - 3, bottom); ctx.lineTo(x + 3, bottom);
          ctx.stroke();
        });
        ctx.restore();
      });
    },
  };

  const base = { responsive: true, maintainAspectRatio: false, animation: false };

  // Validation accuracy per epoch: each arm's mean with a +-1 std band (a filled pair of invisible lines).
  function curvesChart() {
    const canvas = document.getElementById("chart-study-curves");
    if (!canvas) return;
    const keys = Object.keys(study.arms);
    const epochs = study.arms[keys[0]].curve_mean.map((_, i) => i + 1);
    const datasets = [];
    keys.forEach((key) => {
      const arm = study.arms[key];
      const s = style(key);
      const upper = arm.curve_mean.map((m, i) => m + arm.curve_std[i]);
      const lower = arm.curve_mean.map((m, i) => m - arm.curve_std[i]);
      datasets.push({ label: s.label, data: arm.curve_mean, borderColor: s.color, borderDash: s.dash,
        pointRadius: 0, borderWidth: 1.5 });
      datasets.push({ label: s.label + " + std", data: upper, borderColor: "transparent", pointRadius: 0, fill: false });
      datasets.push({ label: s.label + " band", data: lower, borderColor: "transparent", pointRadius: 0,
        backgroundColor: s.color + "22", fill: "-1" });
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: epochs, datasets },
      options: { ...base, interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { filter: (item) => !/(\+ std| band)$/.test(item.text) } },
          title: { display: true, text: "validation accuracy per epoch (mean ± std over resamples)" } },
        scales: { x: { title: { display: true, text: "epoch" }, ticks: { maxTicksLimit: 10 } },
          y: { title: { display: true, text: "validation accuracy" } } } },
    });
    canvas.dataset.rendered = "true";
  }

  // Epochs until the training loss first falls below the threshold: median over the runs that got there.
  function thresholdChart() {
    const canvas = document.getElementById("chart-study-threshold");
    if (!canvas) return;
    const keys = Object.keys(study.arms);
    const medians = keys.map((key) => {
      const reached = study.arms[key].epochs_to_threshold.filter((e) => e !== null).sort((a, b) => a - b);
      return reached.length ? reached[Math.floor(reached.length / 2)] : null;
    });
    new Chart(canvas, {
      type: "bar",
      data: { labels: keys.map((k) => style(k).label), datasets: [{ label: "median epochs", data: medians,
        backgroundColor: keys.map((k) => style(k).color) }] },
      options: { ...base, plugins: { legend: { display: false }, title: { display: true,
        text: "epochs until training loss < " + study.settings.loss_threshold + " (median)" } },
        scales: { y: { title: { display: true, text: "epochs" } } } },
    });
    canvas.dataset.rendered = "true";
  }

  function sweepChart(canvasId, optimizer) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || !study.sweep) return;
    const cells = study.sweep.filter((c) => c.optimizer === optimizer);
    if (!cells.length) return;
    const rates = [...new Set(cells.map((c) => c.learning_rate))].sort((a, b) => a - b);
    const keys = [...new Set(cells.map((c) => c.variant + "/" + c.scaling))];
    // The axis must include the whiskers, not only the means, or the error bars are cut off.
    const low = Math.min(...cells.map((c) => c.accuracy.mean - c.accuracy.std));
    const high = Math.max(...cells.map((c) => c.accuracy.mean + c.accuracy.std));
    new Chart(canvas, {
      type: "line",
      data: {
        labels: rates.map(String),
        datasets: keys.map((key) => {
          const s = style(key);
          const byRate = rates.map((lr) => cells.find((c) => c.variant + "/" + c.scaling === key && c.learning_rate === lr));
          return { label: s.label, data: byRate.map((c) => (c ? c.accuracy.mean : null)),
            errorBars: byRate.map((c) => (c ? c.accuracy.std : null)), borderColor: s.color,
            backgroundColor: s.color, borderDash: s.dash, pointRadius: 3, borderWidth: 1.5 };
        }),
      },
      options: { ...base, scales: {
        x: { title: { display: true, text: optimizer.toUpperCase() + " learning rate" } },
        y: { min: Math.max(0, Math.floor((low - 0.01) * 100) / 100), max: Math.min(1, Math.ceil((high + 0.01) * 100) / 100),
          title: { display: true, text: "final validation accuracy (mean ± std)" } } } },
      plugins: [errorBars],
    });
    canvas.dataset.rendered = "true";
  }

  if (study) {
    curvesChart();
    thresholdChart();
    sweepChart("chart-sweep-adam", "adam");
    sweepChart("chart-sweep-sgd", "sgd");
  }
  document.body.dataset.studyReady = "true";
})();
