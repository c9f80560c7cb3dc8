"""The longer results page (docs/results.md), generated from study.json with the README block's pieces."""

from __future__ import annotations

from survival.study import StudyReport
from training.report import claims_table, design, num, pct, pvalue, rules, table, two_by_two, wrap
from training.study_claims import describe
from training.study_plan import CLAIMS
from training.study_summary import power_sentence

ARM_LABEL = {"batchnorm": "BN", "plain": "plain"}


def _arm(key: str) -> str:
    variant, _, scaling = key.partition("/")
    return f"{ARM_LABEL.get(variant, variant)}, {scaling}"


def _per_arm(study: StudyReport) -> str:
    keys = list(study.arms)
    rows = []
    for field, label, as_pct in (
        ("accuracy", "final validation accuracy", True),
        ("log_loss", "final validation log-loss", False),
        ("roc_auc", "final validation ROC AUC", False),
        ("ece", "expected calibration error (10 bins)", True),
        ("gap_log_loss", "validation minus training log-loss", False),
        ("acc_std_last", f"std of validation accuracy, last {study.window} epochs", True),
        ("train_loss_auc", "mean training loss over epochs (area under the curve)", False),
        ("val_loss_auc", "mean validation loss over epochs", False),
        ("peak_to_final", "best-epoch minus final accuracy (optimistic)", True),
    ):
        rows.append([label, *((pct if as_pct else num)(getattr(study.arms[k], field)) for k in keys)])
    rows.append(["collapsed / nearly collapsed runs", *(f"{study.arms[k].collapsed} / "
                                                         f"{study.arms[k].near_collapsed}" for k in keys)])  # fmt: skip
    return table(["per arm (mean ± std over resamples)", *(_arm(k) for k in keys)], rows)


def _reliability(study: StudyReport) -> str:
    keys = list(study.arms)
    first = study.arms[keys[0]].reliability
    rows = []
    for i, b in enumerate(first):
        cells = []
        for k in keys:
            r = study.arms[k].reliability[i]
            cells.append("—" if r.observed is None or r.mean_predicted is None
                         else f"{r.mean_predicted:.2f} → {r.observed:.2f} ({r.count})")  # fmt: skip
        rows.append([f"[{b.low:.1f}, {b.high:.1f})", *cells])
    return table(["predicted survival", *(f"{_arm(k)}: mean predicted → observed (rows)" for k in keys)], rows)


def _speed(study: StudyReport) -> str:
    parts = []
    for curve in study.speed:
        rows = [
            [f"{p.threshold:g}", f"{p.median_batchnorm or '—'} ({p.reached_batchnorm})",
             f"{p.median_plain or '—'} ({p.reached_plain})", f"{p.bn_faster} / {p.plain_faster} / {p.ties}",
             pvalue(p.p_sign)]
            for p in curve.points
        ]  # fmt: skip
        head = ["training loss below", "BN: median epochs (runs reached)", "plain: median epochs (runs reached)",
                "BN first / plain first / tie", "sign test p"]  # fmt: skip
        parts.append(f"**{curve.scaling} inputs**\n\n{table(head, rows)}")
    return "\n\n".join(parts)


def _ics(study: StudyReport) -> str:
    if not study.ics:
        return "Not run (`--ics`)."
    rows = []
    for s in study.ics:
        for ics, drift in zip(s.ics, s.input_drift, strict=True):
            rows.append([_arm(f"{s.variant}/{s.scaling}"), ics.layer, num(ics.l2, 4), num(ics.cosine, 4),
                         num(drift.drift, 4)])  # fmt: skip
    head = ["arm", "layer", "ICS: ‖G - G'‖ (Santurkar)", "ICS: cos(G, G')", "input-distribution drift"]
    grad = table(["arm", "gradient change along a 0.1 step (predictiveness)"],
                 [[_arm(f"{s.variant}/{s.scaling}"), num(s.gradient_change)] for s in study.ics])  # fmt: skip
    return f"{table(head, rows)}\n\n{grad}"


def _sweep(study: StudyReport) -> str:
    if not study.sweep:
        return "Not run (`--sweep`)."
    rows = [[c.optimizer, f"{c.learning_rate:g}", _arm(f"{c.variant}/{c.scaling}"), pct(c.accuracy),
             f"{c.collapsed} / {c.near_collapsed} / {c.diverged} of {c.runs}"] for c in study.sweep]  # fmt: skip
    return table(["optimizer", "lr", "arm", "final accuracy", "collapsed / nearly / diverged"], rows)


def _regularization(study: StudyReport) -> str:
    if not study.regularization:
        return "Not run (`--regularization`)."
    rows = [[c.regularization, _arm(f"{c.variant}/{c.scaling}"), pct(c.accuracy), num(c.gap_log_loss)]
            for c in study.regularization]  # fmt: skip
    return table(["regularization", "arm", "final accuracy", "validation minus training log-loss"], rows)


def _length(study: StudyReport) -> str:
    keys = list(study.arms)
    epochs = sorted({p.epoch for k in keys for p in study.arms[k].at_epochs})
    rows = []
    for e in epochs:
        at = [next((p.accuracy for p in study.arms[k].at_epochs if p.epoch == e), None) for k in keys]
        rows.append([str(e), *(pct(a) for a in at)])
    return table(["validation accuracy after epoch", *(_arm(k) for k in keys)], rows)


def results_page(study: StudyReport, study_path: str) -> str:
    """The whole page."""
    s, t = study.settings, study.timings_s
    comparisons = [[f"{_arm(c.a)} - {_arm(c.b)}", c.metric, describe(c)] for c in study.comparisons]
    plan_rows = [[c.id, c.claim, c.kind, c.part, ", ".join(c.scalings)] for c in CLAIMS]
    timing = ", ".join(f"{name} {v:.0f} s" for name, v in t.model_dump().items() if v is not None)
    return "\n".join([
        "# Results",
        "",
        f"<!-- generated by `python -m training report` from {study_path}; do not edit by hand -->",
        "",
        wrap(f"The study: {design(study)}; created {study.created_at}."),
        "",
        "## Verdict",
        "",
        wrap(study.verdict),
        "",
        wrap(power_sentence(study.power, len(s.seeds), s.folds)),
        "",
        "## Batch normalization x input scaling",
        "",
        two_by_two(study),
        "",
        "## Claims",
        "",
        wrap(rules(study)),
        "",
        claims_table(study),
        "",
        "Full results of each test:",
        "",
        *(f"- **{c.claim}** ({c.scaling}; {c.test}): {c.result}. *{c.verdict}*" for c in study.claims),
        "",
        "## Per arm",
        "",
        _per_arm(study),
        "",
        "## Paired differences (a minus b)",
        "",
        table(["a - b", "metric", "mean, corrected 95 % CI (uncorrected), resamples where a is better"], comparisons),
        "",
        "## Calibration: reliability per arm (pooled over resamples)",
        "",
        _reliability(study),
        "",
        "## Speed: epochs until the training loss first falls below each threshold",
        "",
        wrap("Sign tests here are descriptive (one per threshold, outside the claims' family); the claim \"BN trains "
        "faster\" is tested on the area under the training-loss curve."),
        "",
        _speed(study),
        "",
        "## Internal covariate shift (Santurkar et al. 2018) and input-distribution drift, per layer",
        "",
        wrap("ICS: the gradient G of a layer's weights on a training batch, and G' on the same batch after the layers "
        "below it took the optimizer's update of that step; measured at the first step of every 10th epoch. The "
        "input-distribution drift is the epoch-to-epoch change of the mean and spread of the layer's inputs "
        "(Ioffe & Szegedy's covariate shift). Hidden layer 1 has no layer below it. ||G - G'|| grows with the size of "
        "the gradient, which differs between the arms; the cosine does not, and is shown beside it."),
        "",
        _ics(study),
        "",
        "## Learning-rate sweep",
        "",
        wrap("The collapse claim pairs each run with BN with the run without BN on the same resample and learning "
        "rate; runs that share a resample are not independent, so its exact McNemar p-value is optimistic. The "
        "accuracy claim averages the higher-rate cells within each resample and is tested once."),
        "",
        _sweep(study),
        "",
        "## Regularization",
        "",
        _regularization(study),
        "",
        "## Length of training",
        "",
        _length(study),
        "",
        "## The plan",
        "",
        table(["id", "claim", "kind", "part", "inputs"], plan_rows),
        "",
        f"Time: {timing} on {s.device}, {s.threads} thread(s); "
        + ", ".join(f"{k} {v}" for k, v in study.versions.items())
        + ".",
        "",
    ])  # fmt: skip
