// Draws the dashboard's live-comparison section from GET /comparison (redrawn every 30 s).
"use strict";

(function () {
  const MODELS = ["batchnorm", "plain"];
  const COLORS = { batchnorm: "#1f77b4", plain: "#d62728" };
  const LABELS = { batchnorm: "with BatchNorm", plain: "without BatchNorm" };
  const NEUTRAL = "#7f7f7f";
  const REFRESH_MS = 30000;

  const chart = window.dashboardChart; // static/charts.js

  const count = (n) => Number(n).toLocaleString("en-US");
  const plural = (n, word) => `${count(n)} ${word}${n === 1 ? "" : "s"}`;
  const fixed = (value, digits) => (value === null || value === undefined ? "n/a" : Number(value).toFixed(digits));
  // A difference in accuracy as signed percentage points.
  const points = (value) => (value === null || value === undefined ? "n/a" : (value >= 0 ? "+" : "") + (100 * value).toFixed(1));
  const interval = (pair) => (pair ? `[${points(pair[0])}, ${points(pair[1])}]` : "n/a");
  const pValue = (p) => (p === null || p === undefined ? "n/a" : Number(p).toPrecision(2));

  function cell(tag, text, className) {
    const element = document.createElement(tag);
    element.textContent = text;
    if (className) element.className = className;
    return element;
  }

  function row(cells, header) {
    const tr = document.createElement("tr");
    cells.forEach((text, i) => tr.append(cell(i === 0 || header ? "th" : "td", text)));
    return tr;
  }

  function fill(tableId, head, rows) {
    const table = document.getElementById(tableId);
    table.tHead.replaceChildren(row(head, true));
    table.tBodies[0].replaceChildren(...rows.map((cells) => row(cells, false)));
  }

  // The state everywhere it shows: the summary, the section's frame and the contents bar's badge.
  function showState(state, badgeText) {
    document.getElementById("comparison-summary").dataset.state = state;
    document.getElementById("comparison").dataset.state = state;
    const badge = document.getElementById("toc-comparison-state");
    if (badge) {
      badge.dataset.state = state;
      badge.textContent = badgeText;
    }
  }

  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }

  function answering(mode) {
    if (mode === "both") return "both models answer /predict";
    const shadow = MODELS.find((m) => m !== mode);
    return `${mode} answers /predict (the champion); ${shadow} scores every request as the shadow`;
  }

  function modelsTable(report) {
    const recent = report.recent;
    const head = [""];
    MODELS.forEach((m) => head.push(`${LABELS[m]} (all ${count(report.models[m].n)})`));
    MODELS.forEach((m) => head.push(`${LABELS[m]} (last ${count(recent.models[m].n)})`));
    const metrics = [
      ["Accuracy", "accuracy"],
      ["Log-loss (lower is better)", "log_loss"],
      ["Brier score (lower is better)", "brier"],
      ["ECE (lower is better)", "ece"],
    ];
    const rows = metrics.map(([label, key]) => [
      label,
      ...MODELS.map((m) => fixed(report.models[m][key], 3)),
      ...MODELS.map((m) => fixed(recent.models[m][key], 3)),
    ]);
    fill("comparison-models", head, rows);
  }

  function pairedTable(paired) {
    document.getElementById("paired-both-right").textContent = count(paired.both_right);
    document.getElementById("paired-only-batchnorm").textContent = count(paired.only_batchnorm_right);
    document.getElementById("paired-only-plain").textContent = count(paired.only_plain_right);
    document.getElementById("paired-both-wrong").textContent = count(paired.both_wrong);
  }

  function differenceTable(report) {
    const all = report.paired;
    const recent = report.recent.paired;
    const level = `${Math.round(100 * (1 - report.alpha))} %`;
    fill(
      "comparison-difference",
      ["batchnorm \u2212 plain, points", `all ${count(all.n)} pairs`, `last ${count(recent.n)} pairs`],
      [
        ["Accuracy difference", points(all.accuracy_difference), points(recent.accuracy_difference)],
        [`${level} confidence sequence (anytime-valid)`, interval(all.confidence_sequence), interval(recent.confidence_sequence)],
        [`${level} fixed-n interval`, interval(all.interval), interval(recent.interval)],
        ["McNemar exact p", pValue(all.mcnemar_p), pValue(recent.mcnemar_p)],
      ]
    );
  }

  // Both intervals as horizontal segments around the difference, with 0 marked: the verdict is whether the
  // confidence sequence (the upper one) crosses 0.
  function differenceChart(report) {
    const paired = report.paired;
    const pct = (v) => 100 * v;
    const segment = (pair, y, label, color) => ({
      label: label,
      data: pair ? [{ x: pct(pair[0]), y: y }, { x: pct(pair[1]), y: y }] : [],
      borderColor: color,
      backgroundColor: color,
      showLine: true,
      borderWidth: 4,
      pointStyle: "line",
      pointRadius: 8,
      pointRotation: 90,
    });
    const d = paired.accuracy_difference === null ? null : pct(paired.accuracy_difference);
    chart("chart-comparison-difference", {
      type: "scatter",
      data: {
        datasets: [
          segment(paired.confidence_sequence, 1, "confidence sequence (anytime-valid)", "#1b6e2a"),
          segment(paired.interval, 0, "fixed-n interval", NEUTRAL),
          {
            label: "difference",
            data: d === null ? [] : [{ x: d, y: 1 }, { x: d, y: 0 }],
            borderColor: "#1d2430",
            backgroundColor: "#1d2430",
            pointRadius: 4,
          },
          {
            label: "no difference",
            data: [{ x: 0, y: -0.5 }, { x: 0, y: 1.5 }],
            borderColor: "#9b1c1c",
            borderDash: [5, 4],
            borderWidth: 1.5,
            showLine: true,
            pointRadius: 0,
          },
        ],
      },
      options: {
        scales: {
          x: { title: { display: true, text: "accuracy difference, batchnorm \u2212 plain (percentage points)" } },
          y: {
            min: -0.5,
            max: 1.5,
            // Two rows, not a numeric axis: a tick at each segment, named.
            afterBuildTicks: (axis) => {
              axis.ticks = [{ value: 0 }, { value: 1 }];
            },
            ticks: { callback: (v) => (v === 1 ? "sequence" : "fixed-n") },
          },
        },
        plugins: {
          tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${ctx.raw.x.toFixed(1)} points` } },
        },
      },
    });
  }

  function reliabilityChart(report) {
    const datasets = MODELS.map((m) => ({
      label: LABELS[m],
      data: report.models[m].reliability.map((b) => ({ x: b.mean_probability, y: b.observed_rate, n: b.n })),
      borderColor: COLORS[m],
      backgroundColor: COLORS[m],
      showLine: true,
      pointRadius: 3,
      borderWidth: 1.5,
    }));
    datasets.push({
      label: "calibrated",
      data: [{ x: 0, y: 0 }, { x: 1, y: 1 }],
      borderColor: NEUTRAL,
      borderDash: [5, 4],
      borderWidth: 1,
      showLine: true,
      pointRadius: 0,
    });
    chart("chart-comparison-reliability", {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        scales: {
          x: { min: 0, max: 1, title: { display: true, text: "mean predicted probability of survival (bin)" } },
          y: { min: 0, max: 1, title: { display: true, text: "observed survival rate (bin)" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) =>
                ctx.raw.n === undefined
                  ? ctx.dataset.label
                  : `${ctx.dataset.label}: ${ctx.raw.n} predictions, predicted ${ctx.raw.x.toFixed(2)}, observed ${ctx.raw.y.toFixed(2)}`,
            },
          },
        },
      },
    });
  }

  function estimatedTable(report) {
    const body = document.querySelector("#comparison-estimated tbody");
    body.replaceChildren(
      ...MODELS.map((m) => {
        const e = report.estimated[m];
        return row(
          [
            LABELS[m],
            count(e.n_unlabelled),
            fixed(e.expected_accuracy, 3),
            e.calibrated_on ? `${count(e.calibrated_on)} labelled` : "too few labelled: raw probabilities",
            fixed(e.realised_accuracy, 3),
          ],
          false
        );
      })
    );
  }

  function render(report) {
    const summary = document.getElementById("comparison-summary");
    const counts = document.getElementById("comparison-counts");
    summary.textContent = report.verdict; // verbatim: the service words it from the confidence sequence
    counts.textContent =
      `${plural(report.n_predictions, "prediction")} recorded, ${count(report.n_labelled)} with an outcome; ` +
      `${answering(report.answer)}. Recent: the last ${count(report.window)}.`;
    show("comparison-estimate", report.n_predictions > report.n_labelled);
    estimatedTable(report);
    if (report.n_labelled === 0) {
      show("comparison-labelled", false);
      counts.textContent += " Send outcomes with POST /feedback (a prediction's id, or a PassengerId, and Survived).";
      showState("empty", "no outcomes");
      return;
    }
    show("comparison-labelled", true);
    modelsTable(report);
    pairedTable(report.paired);
    differenceTable(report);
    differenceChart(report);
    reliabilityChart(report);
    if (report.more_accurate) showState("shown", `${report.more_accurate} better`);
    else showState("unshown", "not shown");
  }

  function off() {
    document.getElementById("comparison-summary").textContent =
      "The prediction store is off (STORE_URL=none): no prediction is recorded, so there is nothing to compare " +
      "and no outcome can be fed back.";
    document.getElementById("comparison-counts").textContent = "";
    show("comparison-labelled", false);
    show("comparison-estimate", false);
    showState("off", "off");
  }

  function refresh() {
    fetch("/comparison", { headers: { accept: "application/json" } })
      .then((r) => {
        if (r.status === 404) return null;
        return r.ok ? r.json() : Promise.reject(new Error(`GET /comparison answered ${r.status}`));
      })
      .then((report) => (report === null ? off() : render(report)))
      .catch((err) => {
        document.getElementById("comparison-summary").textContent = `Live comparison unavailable: ${err.message}`;
        document.getElementById("comparison-counts").textContent = "";
        show("comparison-labelled", false); // no figures from an earlier answer left standing as if current
        show("comparison-estimate", false);
        showState("error", "unavailable");
      })
      .finally(() => {
        document.body.dataset.comparisonReady = "true";
      });
  }

  if (document.getElementById("comparison")) {
    refresh();
    setInterval(refresh, REFRESH_MS);
  }
})();
