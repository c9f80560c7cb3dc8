"""The dashboard's study section: which run and data it belongs to, the claims table, the 2 x 2 and the details.

Written to render any study that passed the schema (every lookup of an optional part is guarded), so a valid
file can never make the page fail.
"""

from __future__ import annotations

from html import escape
from typing import Any

from survival.study import Stat, StudyReport

ARM_LABELS = {"batchnorm": "BN", "plain": "plain"}
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails", "not shown": "unshown"}
ARM_ROWS = (
    ("accuracy", "Final validation accuracy", True),
    ("log_loss", "Final validation log-loss", False),
    ("roc_auc", "Final validation ROC AUC", False),
    ("ece", "Expected calibration error (10 bins)", True),
    ("train_accuracy", "Final training accuracy", True),
    ("gap_accuracy", "Train minus validation accuracy", True),
    ("gap_log_loss", "Validation minus train log-loss", False),
    ("acc_std_last", "Std of validation accuracy, last epochs", True),
    ("loss_std_last", "Std of validation loss, last epochs", False),
    ("train_loss_auc", "Mean training loss over all epochs (area under the curve)", False),
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


def _p(value: float | None) -> str:
    if value is None:
        return "&mdash;"
    return "&lt; 0.001" if value < 0.001 else f"{value:.3f}"


def _claims(study: StudyReport) -> str:
    rows = [
        [
            escape(c.claim),
            escape(c.scaling),
            escape(c.measurement),
            escape(c.test),
            escape(c.result),
            _p(c.p_value),
            _p(c.p_holm),
            f'<span class="{VERDICT_CLASS[c.verdict]}">{escape(c.verdict)}</span>',
        ]
        for c in study.claims
    ]
    head = ["claim", "inputs", "measurement", "test", "result", "p", "Holm p", "verdict"]
    return _table(head, rows)


def _power(study: StudyReport) -> str:
    p, plan = study.power, study.plan
    needs = "; ".join(
        f"{n.effect_points:g} point{'' if n.effect_points == 1 else 's'}: "
        + (f"{n.seeds} seeds" if n.seeds is not None else "not reachable with this design")
        for n in p.seeds_needed
    )
    return (
        f'<p class="note" id="study-power">Power ({escape(p.outcome)}): the smallest true difference this design '
        f"detects with {100 * plan.power:.0f} % power at alpha {plan.alpha:g} is <strong>{p.mde_points:.1f} points"
        f"</strong> over {p.resamples} resamples ({p.mde_limit_points:.1f} with unlimited seeds; spread of the paired "
        f"difference {p.sd_points:.1f} points). Seeds needed for {escape(needs)}. Plan {escape(plan.version)} "
        f"(sha256 <code>{escape(plan.sha256[:12])}</code>): Holm over {plan.family_size} claims; a claim of no "
        f"effect needs an equivalence test within &plusmn;{100 * plan.equivalence_margin:g} points.</p>"
    )


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
    arms = [study.arms[k] for k in keys]
    rows.append(["Collapsed / nearly collapsed runs", *(f"{a.collapsed} / {a.near_collapsed}" for a in arms)])
    rows.append(["Accuracy without collapsed runs", *(_s(a.accuracy_without_collapsed, pct=True) for a in arms)])
    return _table(["per arm, mean ± std over resamples", *(_arm_label(k) for k in keys)], rows)


def _speed(study: StudyReport) -> str:
    rows = [
        [
            escape(curve.scaling),
            f"{p.threshold:g}",
            f"{p.median_batchnorm if p.median_batchnorm is not None else 'never'} ({p.reached_batchnorm})",
            f"{p.median_plain if p.median_plain is not None else 'never'} ({p.reached_plain})",
            f"{p.bn_faster} / {p.plain_faster} / {p.ties}",
            _p(p.p_sign),
        ]
        for curve in study.speed
        for p in curve.points
    ]
    head = ["inputs", "training loss below", "BN: median epochs (reached)", "plain: median epochs (reached)",
            "BN first / plain first / tied", "sign test p (descriptive)"]  # fmt: skip
    return _table(head, rows)


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
            [_arm_label(f"{s.variant}/{s.scaling}"), escape(ics.layer), _s(ics.l2), _s(ics.cosine), _s(drift.drift)]
            for s in study.ics
            for ics, drift in zip(s.ics, s.input_drift, strict=False)
        ]
        head = [
            "arm",
            "layer",
            "ICS &#8214;G &minus; G'&#8214; (Santurkar)",
            "ICS cos(G, G')",
            "input-distribution drift",
        ]
        parts.append("<h3>Internal covariate shift (Santurkar et al. 2018) and input-distribution drift</h3>")
        parts.append(
            "<p class=\"note\">ICS: the gradient of a layer's weights on a training batch before (G) and after (G') "
            "the layers below it take that step's optimizer update. Drift: the epoch-to-epoch change of the mean and "
            "spread of the layer's inputs. Hidden layer 1 has no layer below it.</p>"
        )
        parts.append(_table(head, rows))
        grad = [[_arm_label(f"{s.variant}/{s.scaling}"), _s(s.gradient_change)] for s in study.ics]
        parts.append(_table(["arm", "gradient change along a 0.1 step (predictiveness)"], grad))
    return "".join(parts)


def study_section(study: StudyReport | None, training: dict[str, Any], problem: str | None = None) -> str:
    """The whole study section (a short note when no study has been run, or why its results cannot be shown)."""
    if study is None and problem is not None:
        return (
            '<section id="study"><h2>Study</h2><p class="note">The study results were refused: '
            f"{escape(problem)}.</p></section>"
        )
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
{_power(study)}
<p class="note">{len(s.seeds)} seeds, {resampling} ({s.resamples} resamples per arm), {s.epochs} epochs,
{escape(s.optimizer)} lr {s.learning_rate:g}, batch {s.batch_size}. Within a resample every arm shares the split,
initial weights and batch order. Tests and intervals are Nadeau-Bengio corrected for the overlap of resampled
training sets; verdicts read Holm-adjusted p-values. Study time {study.timings_s.study:.1f} s on
{escape(s.device)}.</p>
<h3>Claims</h3>{_claims(study)}
<h3>Batch normalization x input scaling</h3>{_two_by_two(study)}
<div class="grid"><div class="chart"><canvas id="chart-study-curves" aria-label="validation accuracy per epoch, four
arms, 95 % bands"></canvas></div><div class="chart"><canvas id="chart-study-train-loss" aria-label="training loss per
epoch, four arms, 95 % bands"></canvas></div><div class="chart"><canvas id="chart-study-threshold" aria-label="epochs
to each training-loss threshold"></canvas></div><div class="chart"><canvas id="chart-study-reliability"
aria-label="reliability diagram per arm"></canvas></div></div>
<h3>Per arm</h3>{_arms(study)}
<h3>Speed: epochs until the training loss falls below each threshold</h3>{_speed(study)}
<h3>Paired differences</h3>{_comparisons(study)}
<h3>Length of training</h3>{_length(study)}
{_optional(study)}</section>"""
