"""Render the dashboard page from the same MetricsReport that GET /metrics returns as JSON."""

from __future__ import annotations

import json
from html import escape

from service.dashboard.comparison import COMPARISON_SECTION
from service.dashboard.monitoring import MONITORING_SECTION
from service.dashboard.study_section import study_section
from service.schemas import MetricsReport

LABELS = {"batchnorm": "with BatchNorm", "plain": "without BatchNorm"}
CSS_CLASS = {"batchnorm": "bn", "plain": "plain"}
ROWS = [
    ("accuracy", "Accuracy", "{:.3f}"),
    ("log_loss", "Log-loss (lower is better)", "{:.3f}"),
    ("roc_auc", "ROC AUC", "{:.3f}"),
    ("precision", "Precision", "{:.3f}"),
    ("recall", "Recall", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("brier", "Brier score (lower is better)", "{:.3f}"),
]


def _fmt(value: object, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _metrics_table(report: MetricsReport) -> str:
    names = list(report.models)
    head = "".join(f'<th class="{CSS_CLASS[n]}">{LABELS[n]}</th>' for n in names)
    rows = []
    for key, label, pattern in ROWS:
        cells = "".join(f"<td>{_fmt(getattr(report.models[n].validation, key), pattern)}</td>" for n in names)
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    base = report.baseline.majority_accuracy
    rows.append(f'<tr><td>Majority-class baseline accuracy</td><td colspan="{len(names)}">{base:.3f}</td></tr>')
    n_val = report.models[names[0]].validation.n
    return (
        f'<div class="scroll"><table><thead><tr><th>Validation metric (n = {n_val}, final epoch)</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _confusion(report: MetricsReport) -> str:
    blocks = []
    for name, m in report.models.items():
        (tn, fp), (fn, tp) = m.validation.confusion_matrix
        blocks.append(
            f'<div><h3 class="{CSS_CLASS[name]}">{LABELS[name]}</h3><table class="cm">'
            "<tr><th></th><th>predicted died</th><th>predicted survived</th></tr>"
            f"<tr><th>died</th><td>{tn}</td><td>{fp}</td></tr>"
            f"<tr><th>survived</th><td>{fn}</td><td>{tp}</td></tr></table></div>"
        )
    return f'<div class="grid">{"".join(blocks)}</div>'


def _settings(report: MetricsReport) -> str:
    training = next(iter(report.models.values())).training
    rows = "".join(
        f"<tr><td>{escape(str(k))}</td><td><code>{escape(v if isinstance(v, str) else json.dumps(v))}</code></td></tr>"
        for k, v in training.items()
    )
    return f'<div class="scroll"><table><tbody>{rows}</tbody></table></div>'


def embed_json(data: object) -> str:
    """JSON that is safe inside a <script> element: no string can end it or open a comment or a nested script.

    Every <, > and & is written as its \\u escape (valid JSON, the same value once parsed), so "</script>",
    "<!--" and "<script" cannot appear in the element's text whatever the data's strings hold.
    """
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The table of contents: (section id, link text). The page is long once a study has run (thousands of pixels),
# so every section is one click away from a bar that stays at the top.
SECTIONS = (
    ("metrics", "Validation metrics"),
    ("curves", "Training curves"),
    ("confusion", "Confusion matrices"),
    ("study", "Study"),
    ("monitoring", "Input monitoring"),
    ("comparison", "Live comparison"),
    ("settings", "Training settings"),
)
# The sections whose state a script shows as a badge in the bar: static/monitoring.js the drift (no drift,
# DRIFT, ...), static/comparison.js the verdict (not shown, batchnorm better, no outcomes, off, ...).
BADGES = {
    "monitoring": '<span id="toc-monitoring-state" class="state" data-drift="loading"></span>',
    "comparison": '<span id="toc-comparison-state" class="state" data-state="loading"></span>',
}


def _toc() -> str:
    """The sticky navigation bar, with the badges the scripts fill."""
    links = "".join(f'<li><a href="#{sid}">{title}</a>{BADGES.get(sid, "")}</li>' for sid, title in SECTIONS)
    return f'<nav id="toc" aria-label="Sections of this page"><ul>{links}</ul></nav>'


def render_dashboard(report: MetricsReport) -> str:
    """The whole dashboard page."""
    first = next(iter(report.models.values())).training
    payload = embed_json(report.model_dump(mode="json"))
    charts = "".join(
        f'<div><h3>{title}</h3><div class="chart"><canvas id="{cid}" aria-label="{title}"></canvas></div></div>'
        for cid, title in (
            ("chart-train-loss", "Training loss per epoch"),
            ("chart-val-loss", "Validation loss per epoch"),
            ("chart-train-accuracy", "Training accuracy per epoch"),
            ("chart-val-accuracy", "Validation accuracy per epoch"),
        )
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Titanic survival: BatchNorm vs plain</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css"></head>
<body>
<header><h1>Titanic survival: <span class="bn">with BatchNorm</span> vs <span class="plain">without</span></h1>
<p>Same network (Pclass, Fare, Age &rarr; 16 &rarr; 8 &rarr; 1), same split, seed, initial weights and batch order.
Run <code>{escape(str(first.get("run_id", "")))}</code>,
data sha256 <code>{escape(str(first.get("data_sha256", ""))[:12])}</code>.
JSON of this page: <code>GET /metrics</code> with <code>Accept: application/json</code>.</p></header>
{_toc()}
<main>
<section id="metrics"><h2>Validation metrics</h2>{_metrics_table(report)}
<p class="note">One 179-row validation split: a difference of one passenger is 0.6 points, and another split moves
accuracy by about &plusmn;3 points. The study below measures that spread.</p></section>
<section id="curves"><h2>Training curves (evaluated in eval mode after each epoch)</h2>
<div class="grid">{charts}</div></section>
<section id="confusion"><h2>Confusion matrices (threshold 0.5)</h2>{_confusion(report)}</section>
{study_section(report.study, first, report.study_problem)}
{MONITORING_SECTION}
{COMPARISON_SECTION}
<section id="settings"><h2>Training settings</h2>{_settings(report)}</section>
</main>
<script type="application/json" id="dashboard-data">{payload}</script>
<script src="/static/chart.umd.min.js"></script>
<script src="/static/dashboard.js"></script>
<script src="/static/study.js"></script>
<script src="/static/charts.js"></script>
<script src="/static/monitoring.js"></script>
<script src="/static/comparison.js"></script>
</body></html>
"""
