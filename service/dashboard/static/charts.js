// What the live sections of the dashboard (monitoring.js, comparison.js) share: one way to (re)draw a chart.
"use strict";

// Draws `config` on the canvas `id`, replacing the chart a previous refresh drew there; marks the canvas drawn.
window.dashboardChart = function (id, config) {
  const canvas = document.getElementById(id);
  const old = Chart.getChart(canvas);
  if (old) old.destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
  new Chart(canvas, config);
  canvas.dataset.rendered = "true";
};
