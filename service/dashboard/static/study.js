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

  // A per-epoch curve for every arm: the mean over resamples with its corrected 95 % band (a filled pair of
  // invisible lines: upper edge, then the lower edge filled up to it).
  function bandChart(canvasId, meanKey, halfKey, title, yLabel) {
    const canvas = document.getElementById(canvasId);
    if (!canvas) return;
    const keys = Object.keys(study.arms);
    const epochs = study.arms[keys[0]][meanKey].map((_, i) => i + 1);
    const datasets = [];
    keys.forEach((key) => {
      const arm = study.arms[key];
      const s = style(key);
      const upper = arm[meanKey].map((m, i) => m + arm[halfKey][i]);
      const lower = arm[meanKey].map((m, i) => m - arm[halfKey][i]);
      datasets.push({ label: s.label, data: arm[meanKey], borderColor: s.color, borderDash: s.dash,
        pointRadius: 0, borderWidth: 1.5 });
      datasets.push({ label: s.label + " upper 95 %", data: upper, borderColor: "transparent", pointRadius: 0, fill: false });
      datasets.push({ label: s.label + " band", data: lower, borderColor: "transparent", pointRadius: 0,
        backgroundColor: s.color + "22", fill: "-1" });
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: epochs, datasets },
      options: { ...base, interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { filter: (item) => !/( upper 95 %| band)$/.test(item.text) } },
          title: { display: true, text: title } },
        scales: { x: { title: { display: true, text: "epoch" }, ticks: { maxTicksLimit: 10 } },
          y: { title: { display: true, text: yLabel } } } },
    });
    canvas.dataset.rendered = "true";
  }

  // Epochs until the training loss first falls below each threshold: median over the runs that got there, per
  // arm, over the whole range of thresholds (one threshold can sit where two curves cross).
  function thresholdChart() {
    const canvas = document.getElementById("chart-study-threshold");
    if (!canvas || !study.speed) return;
    const thresholds = study.settings.loss_thresholds;
    const datasets = [];
    study.speed.forEach((curve) => {
      ["batchnorm", "plain"].forEach((variant) => {
        const s = style(variant + "/" + curve.scaling);
        datasets.push({ label: s.label, data: curve.points.map((p) => p["median_" + variant]),
          borderColor: s.color, backgroundColor: s.color, borderDash: s.dash, pointRadius: 3, borderWidth: 1.5 });
      });
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: thresholds.map(String), datasets },
      options: { ...base, plugins: { title: { display: true,
        text: "median epochs until the training loss falls below each threshold" } },
        scales: { x: { title: { display: true, text: "training-loss threshold" } },
          y: { title: { display: true, text: "epochs" } } } },
    });
    canvas.dataset.rendered = "true";
  }

  // Reliability diagram: observed survival rate against mean predicted probability per bin, per arm, with the
  // diagonal of perfect calibration.
  function reliabilityChart() {
    const canvas = document.getElementById("chart-study-reliability");
    if (!canvas) return;
    const datasets = Object.keys(study.arms).map((key) => {
      const s = style(key);
      const points = study.arms[key].reliability.filter((b) => b.observed !== null)
        .map((b) => ({ x: b.mean_predicted, y: b.observed }));
      return { label: s.label + " (ECE " + (100 * study.arms[key].ece.mean).toFixed(1) + " %)", data: points,
        borderColor: s.color, backgroundColor: s.color, borderDash: s.dash, showLine: true, pointRadius: 3 };
    });
    datasets.push({ label: "perfect calibration", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#999",
      borderDash: [2, 2], showLine: true, pointRadius: 0 });
    new Chart(canvas, {
      type: "scatter",
      data: { datasets },
      options: { ...base, plugins: { title: { display: true, text: "reliability (pooled over resamples)" } },
        scales: { x: { min: 0, max: 1, title: { display: true, text: "mean predicted survival" } },
          y: { min: 0, max: 1, title: { display: true, text: "observed survival rate" } } } },
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
    bandChart("chart-study-curves", "curve_mean", "curve_half95",
      "validation accuracy per epoch (mean, corrected 95 % band over resamples)", "validation accuracy");
    bandChart("chart-study-train-loss", "train_loss_mean", "train_loss_half95",
      "training loss per epoch (mean, corrected 95 % band over resamples)", "training loss");
    thresholdChart();
    reliabilityChart();
    sweepChart("chart-sweep-adam", "adam");
    sweepChart("chart-sweep-sgd", "sgd");
  }
  document.body.dataset.studyReady = "true";
})();
