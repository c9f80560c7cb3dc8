"""The dashboard's study section: which run and data it belongs to, the claims table, the 2 x 2 and the details.

Written to render any study that passed the schema (every lookup of an optional part is guarded), so a valid
file can never make the page fail.
"""

from __future__ import annotations

from html import escape
from typing import Any

from survival.study import ArmSummary, Stat, StudyReport

ARM_LABELS = {"batchnorm": "BN", "plain": "plain"}
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails", "not shown": "unshown"}
ARM_ROWS = (
    ("accuracy", "Final validation accuracy", True),
    ("log_loss", "Final validation log-loss", False),
    ("roc_auc", "Final validation ROC AUC", False),
    ("train_accuracy", "Final training accuracy", True),
    ("gap_accuracy", "Train minus validation accuracy", True),
    ("gap_log_loss", "Validation minus train log-loss", False),
    ("acc_std_last", "Std of validation accuracy, last epochs", True),
    ("loss_std_last", "Std of validation loss, last epochs", False),
    ("val_loss_auc", "Mean validation loss over all epochs", False),
    ("peak_to_final", "Best-epoch minus final accuracy (optimistic)", True),
    ("best_epoch_accuracy", "Best-epoch accuracy (optimistic: picked on the validation set)", True),
)


def _s(value: Stat | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{100 * value.mean:.1f} % ± {100 * value.std:.1f}"
    return f"{value.mean:.3f} ± {value.std:.3f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A scrolling table; cells are HTML already escaped by the caller."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _arm_label(key: str) -> str:
    variant, _, scaling = key.partition("/")
    return escape(f"{ARM_LABELS.get(variant, variant)}, {scaling}")


def provenance(study: StudyReport, training: dict[str, Any]) -> str:
    """Which data and settings the study used, and plainly whether they are the served run's."""
    s, d = study.settings, study.data
    differences = []
    checks = (
        ("data sha256", d.sha256[:12], str(training.get("data_sha256", ""))[:12]),
        ("epochs", s.epochs, training.get("epochs")),
        ("learning rate", s.learning_rate, training.get("learning_rate")),
        ("batch size", s.batch_size, training.get("batch_size")),
        ("optimizer", s.optimizer, training.get("optimizer")),
        ("hidden layers", list(s.hidden), training.get("hidden")),
    )
    for name, mine, served in checks:
        if mine != served:
            differences.append(f"{name} {escape(str(mine))} (served: {escape(str(served))})")
    scaling = "standardized" if training.get("standardize") else "raw"
    seed = training.get("seed")
    if scaling not in s.scalings:
        differences.append(f"no {scaling}-input arm (the served models use {scaling} inputs)")
    where = (
        f"data <code>{escape(d.file_name)}</code> (sha256 <code>{escape(d.sha256[:12])}</code>), "
        f"created {escape(study.created_at)}"
    )
    if differences:
        return (
            f'<p class="mismatch" id="study-match">This study does not describe the served run '
            f"(<code>{escape(str(training.get('run_id', '')))}</code>): it differs in "
            f"{'; '.join(differences)}. Study: {where}.</p>"
        )
    in_study = seed in s.seeds and s.folds is None
    arm = (
        f"the served models are the {scaling}-input arm, seed {escape(str(seed))}, of this study"
        if in_study
        else f"the served models use {scaling} inputs, with seed {escape(str(seed))}, which is not one of its splits"
    )
    return (
        f'<p class="match" id="study-match">Matches the served run (<code>{escape(str(training.get("run_id", "")))}'
        f"</code>): same data and settings; {arm}. Study: {where}.</p>"
    )


def _claims(study: StudyReport) -> str:
    rows = [
        [
            escape(c.claim),
            escape(c.scaling),
            escape(c.measurement),
            escape(c.result),
            f'<span class="{VERDICT_CLASS[c.verdict]}">{escape(c.verdict)}</span>',
        ]
        for c in study.claims
    ]
    return _table(["claim", "inputs", "measurement", "result (corrected 95 % CI)", "verdict"], rows)


def _two_by_two(study: StudyReport) -> str:
    scalings = study.settings.scalings
    rows = []
    for variant in ("batchnorm", "plain"):
        cells = [
            _s(study.arms[f"{variant}/{sc}"].accuracy, pct=True) for sc in scalings if f"{variant}/{sc}" in study.arms
        ]
        rows.append([("with BN" if variant == "batchnorm" else "without BN"), *cells])
    rows.append(["logistic regression", *(_s(study.baselines.logistic.get(sc), pct=True) for sc in scalings)])
    rows.append(["majority class", _s(study.baselines.majority, pct=True), *([""] * (len(scalings) - 1))])
    return _table(["final validation accuracy", *(f"{escape(sc)} inputs" for sc in scalings)], rows)


def _arms(study: StudyReport) -> str:
    keys = list(study.arms)
    rows = []
    for field, label, pct in ARM_ROWS:
        rows.append([label, *(_s(getattr(study.arms[k], field), pct) for k in keys)])
    for label, fn in (
        ("Collapsed / nearly collapsed runs", lambda a: f"{a.collapsed} / {a.near_collapsed}"),
        ("Accuracy without collapsed runs", lambda a: _s(a.accuracy_without_collapsed, pct=True)),
        ("Epochs to training loss threshold (median; reached)", _threshold),
    ):
        rows.append([label, *(fn(study.arms[k]) for k in keys)])
    return _table(["per arm, mean ± std over resamples", *(_arm_label(k) for k in keys)], rows)


def _threshold(arm: ArmSummary) -> str:
    reached = sorted(e for e in arm.epochs_to_threshold if e is not None)
    if not reached:
        return f"never (0 of {len(arm.epochs_to_threshold)})"
    return f"{reached[len(reached) // 2]} ({len(reached)} of {len(arm.epochs_to_threshold)})"


def _comparisons(study: StudyReport) -> str:
    rows = [
        [
            f"{_arm_label(c.a)} &minus; {_arm_label(c.b)}",
            escape(c.metric),
            f"{c.mean_diff:+.4f}",
            f"[{c.ci95[0]:+.4f}, {c.ci95[1]:+.4f}]",
            f"[{c.ci95_corrected[0]:+.4f}, {c.ci95_corrected[1]:+.4f}]",
            f"{c.ahead} / {c.tied} / {c.behind}",
        ]
        for c in study.comparisons
    ]
    head = [
        "a &minus; b",
        "metric",
        "mean difference",
        "paired t 95 % CI",
        "corrected 95 % CI",
        "a better / tied / worse",
    ]
    return _table(head, rows)


def _length(study: StudyReport) -> str:
    keys = list(study.arms)
    epochs = sorted({p.epoch for k in keys for p in study.arms[k].at_epochs})
    rows = []
    for e in epochs:
        cells = []
        for k in keys:
            point = next((p for p in study.arms[k].at_epochs if p.epoch == e), None)
            cells.append(_s(point.accuracy if point else None, pct=True))
        rows.append([str(e), *cells])
    return _table(["validation accuracy after epoch", *(_arm_label(k) for k in keys)], rows)


def _optional(study: StudyReport) -> str:
    parts = []
    if study.sweep:
        parts.append(
            '<h3>Learning-rate sweep</h3><div class="grid">'
            '<div class="chart"><canvas id="chart-sweep-adam" aria-label="accuracy vs Adam lr"></canvas></div>'
            '<div class="chart"><canvas id="chart-sweep-sgd" aria-label="accuracy vs SGD lr"></canvas></div></div>'
        )
        rows = [
            [
                escape(c.optimizer),
                f"{c.learning_rate:g}",
                _arm_label(f"{c.variant}/{c.scaling}"),
                _s(c.accuracy, pct=True),
                _s(c.val_loss_auc),
                f"{c.collapsed} / {c.near_collapsed} / {c.runs}",
            ]
            for c in study.sweep
        ]
        head = ["optimizer", "lr", "arm", "accuracy", "mean val loss", "collapsed / nearly / runs"]
        parts.append(_table(head, rows))
    if study.regularization:
        rows = [
            [escape(c.regularization), _arm_label(f"{c.variant}/{c.scaling}"), _s(c.accuracy, pct=True),
             _s(c.gap_log_loss)]
            for c in study.regularization
        ]  # fmt: skip
        parts.append("<h3>Regularization arm</h3>")
        parts.append(_table(["regularization", "arm", "accuracy", "val &minus; train log-loss"], rows))
    if study.ics:
        rows = [
            [_arm_label(f"{s.variant}/{s.scaling}"), *(_s(layer) for layer in s.input_shift), _s(s.gradient_change)]
            for s in study.ics
        ]
        n_layers = max(len(s.input_shift) for s in study.ics)
        head = ["arm", *(f"input shift, hidden layer {i + 2}" for i in range(n_layers)), "gradient change"]
        parts.append("<h3>Internal covariate shift and gradient predictiveness (Santurkar et al. 2018)</h3>")
        parts.append(_table(head, rows))
    return "".join(parts)


def study_section(study: StudyReport | None, training: dict[str, Any]) -> str:
    """The whole study section (a short note when no study has been run)."""
    if study is None:
        return (
            '<section id="study"><h2>Study</h2><p class="note">Not run yet: <code>python -m training study</code> '
            "writes it next to the checkpoints.</p></section>"
        )
    s = study.settings
    resampling = f"repeated {s.folds}-fold cross-validation" if s.folds else "a stratified hold-out split per seed"
    return f"""<section id="study"><h2>Study: which of the experiment's claims hold?</h2>
{provenance(study, training)}
<p class="verdict">{escape(study.verdict)}</p>
<p class="note">{len(s.seeds)} seeds, {resampling} ({s.resamples} resamples per arm), {s.epochs} epochs,
{escape(s.optimizer)} lr {s.learning_rate:g}, batch {s.batch_size}. Within a resample every arm shares the split,
initial weights and batch order. Verdicts read the Nadeau-Bengio corrected interval, which accounts for the
overlap of resampled training sets. Study time {study.timings_s.study:.1f} s on {escape(s.device)}.</p>
<h3>Claims</h3>{_claims(study)}
<h3>Batch normalization x input scaling</h3>{_two_by_two(study)}
<div class="grid"><div class="chart"><canvas id="chart-study-curves" aria-label="validation accuracy per epoch, four
arms"></canvas></div><div class="chart"><canvas id="chart-study-threshold" aria-label="epochs to the training-loss
threshold"></canvas></div></div>
<h3>Per arm</h3>{_arms(study)}
<h3>Paired differences</h3>{_comparisons(study)}
<h3>Length of training</h3>{_length(study)}
{_optional(study)}</section>"""
