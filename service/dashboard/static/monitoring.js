// Draws the dashboard's input-monitoring section from GET /monitoring (redrawn every 15 s).
"use strict";

(function () {
  const TRAINING = "#7f7f7f";
  const LIVE = "#ff7f0e";
  const MODEL_LABELS = { batchnorm: "with BN", plain: "without BN" };
  const FEATURE_LABELS = { pclass: "Pclass", fare: "Fare", age: "Age", age_missing: "Age missing" };

  const chart = window.dashboardChart; // static/charts.js

  // Fares run from 0 to 512 with most passengers under 30: on a linear axis they fill a sixth of the width, so
  // the Fare chart's axis is logarithmic. A log axis has no 0, so fares below LOG_FLOOR are drawn at it (the
  // tooltip shows the real value).
  const LOG_FLOOR = 1;

  // A quantile curve: x the feature's value, y the probability (the two ECDFs whose gap KS measures).
  function quantileChart(id, feature, unit, logAxis) {
    const d = feature.distribution;
    const probs = d.labels.map((l) => parseFloat(l) / 100);
    const x = (v) => (logAxis ? Math.max(v, LOG_FLOOR) : v);
    const series = (values, label, color) => ({
      label: label,
      data: values ? values.map((v, i) => ({ x: x(v), y: probs[i], value: v })) : [],
      borderColor: color,
      backgroundColor: color,
      showLine: true,
      pointRadius: 2,
      borderWidth: 1.5,
    });
    chart(id, {
      type: "scatter",
      data: { datasets: [series(d.reference, "training", TRAINING), series(d.window, "live window", LIVE)] },
      options: {
        scales: {
          x: logAxis
            ? { type: "logarithmic", title: { display: true, text: `${unit}, log scale (below ${LOG_FLOOR} drawn at ${LOG_FLOOR})` } }
            : { title: { display: true, text: unit } },
          y: { min: 0, max: 1, title: { display: true, text: "fraction of passengers at or below" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${Math.round(ctx.raw.y * 100)} % at or below ${ctx.raw.value}`,
            },
          },
        },
      },
    });
  }

  function fractionChart(id, pclass, missing) {
    const labels = pclass.distribution.labels.map((l) => "class " + l).concat(["age missing"]);
    const values = (key) => {
      const a = pclass.distribution[key];
      const b = missing.distribution[key];
      return a && b ? a.concat(b) : [];
    };
    chart(id, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "training", data: values("reference"), backgroundColor: TRAINING },
          { label: "live window", data: values("window"), backgroundColor: LIVE },
        ],
      },
      options: { scales: { y: { min: 0, max: 1, title: { display: true, text: "fraction of passengers" } } } },
    });
  }

  // -log10 scales: small p-values (evidence of drift) are tall bars; drift where a bar passes its threshold.
  function evidenceChart(id, labels, values, bounds, yLabel, boundLabel) {
    chart(id, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { type: "bar", label: yLabel, data: values, backgroundColor: LIVE, order: 1 },
          // Drawn over the bars (lower order on top) as a short horizontal mark per bar.
          {
            type: "line",
            label: boundLabel,
            data: bounds,
            borderColor: "#d62728",
            backgroundColor: "#d62728",
            pointStyle: "line",
            pointRadius: 18,
            pointBorderWidth: 3,
            showLine: false,
            order: 0,
          },
        ],
      },
      options: { scales: { y: { min: 0, title: { display: true, text: yLabel } } } },
    });
  }

  function cell(text, alarm) {
    const td = document.createElement("td");
    td.textContent = text;
    if (alarm) td.className = "alarm";
    return td;
  }

  // The drift state everywhere it shows: the summary, the section's frame and the contents bar's badge.
  function showState(state, badgeText) {
    document.getElementById("monitoring-summary").dataset.drift = state;
    document.getElementById("monitoring").dataset.drift = state;
    const badge = document.getElementById("toc-monitoring-state");
    if (badge) {
      badge.dataset.drift = state;
      badge.textContent = badgeText;
    }
  }

  function stateOf(drift) {
    return drift === null ? ["null", "not enough data"] : drift ? ["true", "DRIFT"] : ["false", "no drift"];
  }

  function fmt(value, digits) {
    return value === null || value === undefined ? "not enough data" : Number(value).toPrecision(digits);
  }

  function verdict(flag) {
    return flag === null ? "not enough data" : flag ? "DRIFT" : "no drift";
  }

  function render(report) {
    const summary = document.getElementById("monitoring-summary");
    if (!report.enabled) {
      summary.textContent = "Input monitoring is off (MONITOR=0).";
      showState("off", "off");
      return;
    }
    const w = report.window;
    summary.textContent =
      `${verdict(report.drift)}: ${w.size} of ${w.capacity} passengers in this worker's window` +
      (w.since ? ` (since ${w.since})` : "") +
      `, compared with run ${w.run_id}; verdicts need ${w.min_size}; false-alarm level ${report.alpha}.` +
      (report.reference_error ? ` ${report.reference_error}` : "");
    showState(...stateOf(report.drift));
    const byName = Object.fromEntries(report.features.map((f) => [f.feature, f]));
    if (byName.fare) quantileChart("chart-monitor-fare", byName.fare, "fare (pounds)", true);
    if (byName.age) quantileChart("chart-monitor-age", byName.age, "age (years)", false);
    if (byName.pclass && byName.age_missing) fractionChart("chart-monitor-pclass", byName.pclass, byName.age_missing);
    const log10 = (p) => (p === null ? null : -Math.log10(Math.max(p, 1e-300)));
    evidenceChart(
      "chart-monitor-pvalues",
      report.features.map((f) => FEATURE_LABELS[f.feature] || f.feature),
      report.features.map((f) => log10(f.p_value)),
      report.features.map((f) => log10(f.threshold)),
      "-log10(p-value)",
      "-log10(threshold)"
    );
    evidenceChart(
      "chart-monitor-layers",
      report.activations.map((a) => `${MODEL_LABELS[a.model] || a.model} ${a.layer}`),
      report.activations.map((a) => (a.largest_z === null ? null : Math.abs(a.largest_z))),
      report.activations.map((a) => a.z_threshold),
      "largest |z| of a unit",
      "bound (Bonferroni)"
    );
    const body = document.querySelector("#monitoring-tests tbody");
    body.replaceChildren();
    for (const f of report.features) {
      const row = document.createElement("tr");
      row.append(cell(`${FEATURE_LABELS[f.feature] || f.feature}: ${f.test}`), cell(fmt(f.statistic, 4)));
      row.append(cell(fmt(f.p_value, 3)), cell(fmt(f.threshold, 3)), cell(verdict(f.drift), f.drift === true));
      body.append(row);
    }
    for (const a of report.activations) {
      const row = document.createElement("tr");
      const out = a.units_out_of_bounds === null ? "" : `, ${a.units_out_of_bounds} of ${a.units} units out`;
      row.append(cell(`${MODEL_LABELS[a.model] || a.model} ${a.layer}: mean z-test${out}`));
      row.append(cell(fmt(a.largest_z, 4)), cell(""), cell(`|z| > ${fmt(a.z_threshold, 3)}`));
      row.append(cell(verdict(a.drift), a.drift === true));
      body.append(row);
    }
  }

  function refresh() {
    fetch("/monitoring", { headers: { accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`GET /monitoring answered ${r.status}`))))
      .then(render)
      .catch((err) => {
        document.getElementById("monitoring-summary").textContent = `Monitoring unavailable: ${err.message}`;
        showState("error", "unavailable");
      })
      .finally(() => {
        document.body.dataset.monitoringReady = "true";
      });
  }

  if (document.getElementById("monitoring")) {
    refresh();
    setInterval(refresh, 15000);
  }
})();
