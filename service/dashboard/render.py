"""Render the dashboard page from the same MetricsReport that GET /metrics returns as JSON."""

from __future__ import annotations

import json
from html import escape

from service.schemas import MetricsReport
from survival.study import StudyReport

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


def _stat(stat_mean: float, stat_std: float) -> str:
    return f"{stat_mean:.3f} ± {stat_std:.3f}"


def _study(study: StudyReport | None) -> str:
    if study is None:
        return (
            '<section id="study"><h2>Multi-seed study</h2><p class="note">Not run yet: '
            "<code>python -m training study --sweep</code> writes it next to the checkpoints.</p></section>"
        )
    var_rows = []
    for key, label in (
        ("accuracy", "Final validation accuracy"),
        ("log_loss", "Final validation log-loss"),
        ("roc_auc", "Final validation ROC AUC"),
        ("stability_last50", "Std of validation accuracy, last 50 epochs (lower is steadier)"),
        ("best_epoch_accuracy", "Best-epoch accuracy (optimistic: picked on the validation set)"),
        ("best_minus_final", "Best-epoch minus final accuracy (optimistic)"),
    ):
        cells = "".join(
            f"<td>{_stat(getattr(study.variants[n], key).mean, getattr(study.variants[n], key).std)}</td>"
            for n in ("batchnorm", "plain")
        )
        var_rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    paired_rows = "".join(
        f"<tr><td>{escape(p.metric)}</td><td>{p.mean_diff:+.4f}</td><td>[{p.ci95[0]:+.4f}, {p.ci95[1]:+.4f}]</td>"
        f"<td>{p.ahead} / {p.tied} / {p.behind}</td><td>{escape(p.method)}</td></tr>"
        for p in study.paired
    )
    sweep = ""
    if study.sweep:
        sweep = (
            '<h3>Learning-rate sweep</h3><div class="grid">'
            '<div class="chart"><canvas id="chart-sweep-adam" aria-label="accuracy vs Adam lr"></canvas></div>'
            '<div class="chart"><canvas id="chart-sweep-sgd" aria-label="accuracy vs SGD lr"></canvas></div>'
            "</div>"
        )
        collapsed = "".join(
            f"<tr><td>{escape(c.optimizer)}</td><td>{c.learning_rate:g}</td>"
            f'<td class="{CSS_CLASS.get(c.variant, "")}">{escape(c.variant)}</td>'
            f"<td>{_stat(c.accuracy.mean, c.accuracy.std)}</td><td>{c.collapsed} / {c.runs}</td></tr>"
            for c in study.sweep
        )
        sweep += (
            '<div class="scroll"><table><thead><tr><th>optimizer</th><th>lr</th><th>model</th>'
            "<th>accuracy mean ± std</th><th>collapsed to one class</th></tr></thead>"
            f"<tbody>{collapsed}</tbody></table></div>"
        )
    seeds = f"{len(study.seeds)} seeds ({study.seeds[0]}..{study.seeds[-1]})" if study.seeds else "no seeds"
    return f"""<section id="study"><h2>Multi-seed study: does BN really help?</h2>
<p class="verdict">{escape(study.verdict)}</p>
<p class="note">{seeds}, {study.epochs} epochs, lr {study.learning_rate:g}, batch {study.batch_size}; each seed
has its own split, initial weights and batch order, shared by its two variants. Study time
{study.timings_s.study:.1f} s on {escape(study.device)}.</p>
<div class="scroll"><table><thead><tr><th>Per variant (mean ± std over seeds)</th><th class="bn">with BatchNorm</th>
<th class="plain">without BatchNorm</th></tr></thead><tbody>{"".join(var_rows)}</tbody></table></div>
<h3>Paired difference, BatchNorm minus plain</h3>
<div class="scroll"><table><thead><tr><th>metric</th><th>mean difference</th><th>95 % CI</th>
<th>seeds BN ahead / tied / behind</th><th>method</th></tr></thead><tbody>{paired_rows}</tbody></table></div>
{sweep}</section>"""


def render_dashboard(report: MetricsReport) -> str:
    """The whole dashboard page."""
    first = next(iter(report.models.values())).training
    data = report.model_dump(mode="json")
    # "</" inside a <script> element would end it early; JSON allows the escaped form.
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
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
<main>
<section id="metrics"><h2>Validation metrics</h2>{_metrics_table(report)}
<p class="note">One 179-row validation split: a difference of one passenger is 0.6 points, and another split moves
accuracy by about &plusmn;3 points. The study below measures that spread.</p></section>
<section id="curves"><h2>Training curves (evaluated in eval mode after each epoch)</h2>
<div class="grid">{charts}</div></section>
<section id="confusion"><h2>Confusion matrices (threshold 0.5)</h2>{_confusion(report)}</section>
{_study(report.study)}
<section id="settings"><h2>Training settings</h2>{_settings(report)}</section>
</main>
<script type="application/json" id="dashboard-data">{payload}</script>
<script src="/static/chart.umd.min.js"></script>
<script src="/static/dashboard.js"></script>
</body></html>
"""
