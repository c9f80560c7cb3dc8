"""The experiment's claims, each tested by a measurement of the study, with a verdict generated from the numbers.

A verdict reads the Nadeau-Bengio corrected 95 % interval: "holds" when it excludes zero in the claimed direction,
"does not hold" when it excludes zero the other way, "not shown" when it includes zero or the part that tests it
was not run. Absence of evidence is never reported as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from survival.study import (
    ArmSummary,
    Claim,
    Comparison,
    LayerShift,
    RegularizationCell,
    Scaling,
    Stat,
    SweepCell,
    Verdict,
    arm_name,
)
from training.study_stats import Finding, compare, finding

# The experiment's single run (batch-norm-blog.md), quoted next to the study.
ORIGINAL_ACCURACY: Final[dict[str, float]] = {"plain": 0.69, "batchnorm": 0.71}
# (arm metric, higher is better, percentage points?) of the BN-minus-plain comparisons made on each scaling.
ARM_METRICS: Final[tuple[tuple[str, bool, bool], ...]] = (
    ("accuracy", True, True),
    ("log_loss", False, False),
    ("roc_auc", True, False),
    ("acc_std_last", False, True),
    ("loss_std_last", False, False),
    ("peak_to_final", False, True),
    ("val_loss_auc", False, False),
    ("gap_accuracy", False, True),
    ("gap_log_loss", False, False),
)
POINTS: Final[frozenset[str]] = frozenset(m for m, _, pts in ARM_METRICS if pts)
VERDICT_OF: Final[dict[Finding, Verdict]] = {"better": "holds", "worse": "does not hold", "unclear": "not shown"}


def _values(arm: ArmSummary, metric: str) -> list[float]:
    value = getattr(arm, metric)
    assert isinstance(value, Stat)
    return value.values


def comparisons(arms: dict[str, ArmSummary], scalings: Sequence[Scaling], ratio: float) -> list[Comparison]:
    """BN minus plain on each scaling for every arm metric, and the input-scaling controls when both ran."""
    out = []

    def add(a: str, b: str, metric: str, higher: bool) -> None:
        out.append(
            compare(
                a,
                b,
                metric,
                _values(arms[a], metric),
                _values(arms[b], metric),
                higher_is_better=higher,
                test_train_ratio=ratio,
            )
        )

    for scaling in scalings:
        for metric, higher, _ in ARM_METRICS:
            add(arm_name("batchnorm", scaling), arm_name("plain", scaling), metric, higher)
    if set(scalings) == {"raw", "standardized"}:
        for metric in ("accuracy", "log_loss"):
            higher = metric == "accuracy"
            add("plain/standardized", "plain/raw", metric, higher)
            add("batchnorm/raw", "plain/standardized", metric, higher)
            add("batchnorm/standardized", "batchnorm/raw", metric, higher)
    return out


def find(comps: Sequence[Comparison], a: str, b: str, metric: str) -> Comparison:
    """The comparison of `a` minus `b` on `metric`."""
    return next(c for c in comps if (c.a, c.b, c.metric) == (a, b, metric))


def describe(c: Comparison) -> str:
    """'+2.6 points, 95 % CI [-0.6, +5.8] (corrected); uncorrected [+0.9, +4.3]; ahead on 9 of 10'."""
    scale, unit, fmt = (100.0, " points", "+.1f") if c.metric in POINTS else (1.0, "", "+.3f")

    def ci(pair: tuple[float, float]) -> str:
        return f"[{scale * pair[0]:{fmt}}, {scale * pair[1]:{fmt}}]"

    n = c.ahead + c.tied + c.behind
    return (
        f"{scale * c.mean_diff:{fmt}}{unit}, corrected 95 % CI {ci(c.ci95_corrected)} (uncorrected {ci(c.ci95)}); "
        f"better on {c.ahead} of {n}"
    )


def _claim(text: str, scaling: Scaling, measurement: str, c: Comparison) -> Claim:
    return Claim(
        claim=text, scaling=scaling, measurement=measurement, result=describe(c), verdict=VERDICT_OF[finding(c)]
    )


def _not_run(text: str, scaling: Scaling, measurement: str, flag: str) -> Claim:
    return Claim(claim=text, scaling=scaling, measurement=measurement, result=f"not run ({flag})", verdict="not shown")


# (claim, measurement, BN-minus-plain metric) for the claims the default study tests on each scaling.
ARM_CLAIMS: Final[tuple[tuple[str, str, str], ...]] = (
    ("BN gives a higher final validation accuracy", "final-epoch accuracy, BN minus plain", "accuracy"),
    ("BN gives a steadier validation curve", "std of validation accuracy over the last epochs", "acc_std_last"),
    ("BN gives a steadier validation loss", "std of validation loss over the last epochs", "loss_std_last"),
    ("BN falls back less from its peak", "best-epoch minus final accuracy (optimistic peak)", "peak_to_final"),
    ("BN trains faster", "area under the validation-loss curve (mean loss over epochs)", "val_loss_auc"),
    ("BN regularizes (a smaller generalization gap)", "validation minus training log-loss", "gap_log_loss"),
)


def sweep_claim(cells: Sequence[SweepCell], scaling: Scaling, ratio: float) -> Claim:
    """BN tolerates higher learning rates: accuracy at each optimizer's higher rates, and collapses there."""
    text, measurement = (
        "BN allows higher learning rates",
        "final accuracy and collapses above each optimizer's lowest rate",
    )
    mine = [c for c in cells if c.scaling == scaling]
    by = {(c.optimizer, c.learning_rate, c.variant): c for c in mine}
    better: list[str] = []
    worse: list[str] = []
    collapsed, runs = {"batchnorm": 0, "plain": 0}, 0
    for optimizer in sorted({c.optimizer for c in mine}):
        for lr in sorted({c.learning_rate for c in mine if c.optimizer == optimizer})[1:]:
            bn, plain = by[(optimizer, lr, "batchnorm")], by[(optimizer, lr, "plain")]
            c = compare("bn", "plain", "accuracy", bn.accuracy.values, plain.accuracy.values, higher_is_better=True,
                        test_train_ratio=ratio)  # fmt: skip
            found = finding(c)
            if found != "unclear":
                (better if found == "better" else worse).append(f"{optimizer} {lr:g}")
            collapsed["batchnorm"] += bn.collapsed
            collapsed["plain"] += plain.collapsed
            runs += plain.runs
    verdict: Verdict = "holds" if better and not worse else "does not hold" if worse and not better else "not shown"
    result = (
        f"BN significantly more accurate at {', '.join(better) or 'none'}, less at {', '.join(worse) or 'none'}; "
        f"collapsed runs {collapsed['batchnorm']} of {runs} with BN, {collapsed['plain']} of {runs} without"
    )
    return Claim(claim=text, scaling=scaling, measurement=measurement, result=result, verdict=verdict)


def regularization_claim(cells: Sequence[RegularizationCell], scaling: Scaling, ratio: float) -> Claim:
    """With BN, dropout and weight decay are not needed: neither improves BN's final accuracy."""
    text = "With BN, dropout and weight decay are not needed"
    measurement = "BN's final accuracy with dropout 0.2 / weight decay 1e-3 minus without"
    by = {(c.regularization, c.variant): c for c in cells if c.scaling == scaling}
    none = by[("none", "batchnorm")].accuracy.values
    parts, gains = [], []
    for reg in ("dropout 0.2", "weight decay 1e-3"):
        c = compare(reg, "none", "accuracy", by[(reg, "batchnorm")].accuracy.values, none, higher_is_better=True,
                    test_train_ratio=ratio)  # fmt: skip
        parts.append(f"{reg}: {describe(c)}")
        gains.append(finding(c) == "better")
    verdict: Verdict = "does not hold" if any(gains) else "holds"
    result = "; ".join(parts) + (" (holds: neither helped significantly)" if verdict == "holds" else "")
    return Claim(claim=text, scaling=scaling, measurement=measurement, result=result, verdict=verdict)


def length_claim(arms: dict[str, ArmSummary], scaling: Scaling, main_epoch: int, ratio: float) -> Claim:
    """More epochs help BN more: BN's accuracy gain from the main epoch to the longest, minus plain's."""
    text = "More epochs would help BN more"
    bn, plain = arms[arm_name("batchnorm", scaling)], arms[arm_name("plain", scaling)]
    last = max(p.epoch for p in bn.at_epochs)
    measurement = f"accuracy gain from epoch {main_epoch} to {last}, BN minus plain"
    if last <= main_epoch:
        return _not_run(text, scaling, measurement, "--long trains to 1000 epochs")

    def gain(arm: ArmSummary) -> list[float]:
        at = {p.epoch: p.accuracy.values for p in arm.at_epochs}
        start = at.get(main_epoch, arm.accuracy.values)
        return [b - a for a, b in zip(start, at[last], strict=True)]

    c = compare("bn", "plain", "accuracy", gain(bn), gain(plain), higher_is_better=True, test_train_ratio=ratio)
    return _claim(text, scaling, measurement, c)


def ics_claim(shifts: Sequence[LayerShift], scaling: Scaling, ratio: float) -> list[Claim]:
    """Santurkar et al.'s two measures, BN minus plain: input-distribution shift and gradient change."""
    by = {s.variant: s for s in shifts if s.scaling == scaling}
    bn, plain = by["batchnorm"], by["plain"]

    def mean_shift(s: LayerShift) -> list[float]:
        per_layer = [layer.values for layer in s.input_shift]
        return [sum(v) / len(v) for v in zip(*per_layer, strict=True)]

    shift = compare("bn", "plain", "input_shift", mean_shift(bn), mean_shift(plain), higher_is_better=False,
                    test_train_ratio=ratio)  # fmt: skip
    grads = compare("bn", "plain", "gradient", bn.gradient_change.values, plain.gradient_change.values,
                    higher_is_better=False, test_train_ratio=ratio)  # fmt: skip
    return [
        _claim("BN reduces internal covariate shift", scaling, "per-epoch shift of hidden layers' inputs", shift),
        _claim(
            "BN makes gradients more predictive", scaling, "relative gradient change along the gradient step", grads
        ),
    ]


def claims(
    arms: dict[str, ArmSummary],
    comps: Sequence[Comparison],
    scalings: Sequence[Scaling],
    *,
    main_epoch: int,
    ratio: float,
    sweep: Sequence[SweepCell] | None,
    regularization: Sequence[RegularizationCell] | None,
    ics: Sequence[LayerShift] | None,
) -> list[Claim]:
    """The claims table: every claim on every scaling that ran (the scaling control on raw inputs only)."""
    out: list[Claim] = []
    for scaling in scalings:
        bn, plain = arm_name("batchnorm", scaling), arm_name("plain", scaling)
        for text, measurement, metric in ARM_CLAIMS:
            out.append(_claim(text, scaling, measurement, find(comps, bn, plain, metric)))
        if scaling == "raw" and "standardized" in scalings:
            out.append(
                _claim(
                    "BN's gain on raw inputs is more than scaling the inputs gives",
                    scaling,
                    "final accuracy, BN on raw inputs minus plain on standardized inputs",
                    find(comps, "batchnorm/raw", "plain/standardized", "accuracy"),
                )
            )
        text = "BN allows higher learning rates"
        out.append(sweep_claim(sweep, scaling, ratio) if sweep else _not_run(text, scaling, "the sweep", "--sweep"))
        text = "With BN, dropout and weight decay are not needed"
        out.append(
            regularization_claim(regularization, scaling, ratio)
            if regularization
            else _not_run(text, scaling, "the regularization arm", "--regularization")
        )
        out.append(length_claim(arms, scaling, main_epoch, ratio))
        if ics:
            out += ics_claim(ics, scaling, ratio)
        else:
            out.append(_not_run("BN reduces internal covariate shift", scaling, "layer-input shift", "--ics"))
    return out


def verdict(arms: dict[str, ArmSummary], claim_rows: Sequence[Claim], baseline_majority: float) -> str:
    """A plain-language paragraph: the headline numbers and which claims held, did not, or were not shown."""
    raw_bn, raw_plain = arms.get("batchnorm/raw"), arms.get("plain/raw")
    parts = []
    if raw_bn is not None and raw_plain is not None:
        n = len(raw_bn.accuracy.values)
        parts.append(
            f"On raw inputs over {n} resamples, final validation accuracy was {100 * raw_plain.accuracy.mean:.1f} % "
            f"± {100 * raw_plain.accuracy.std:.1f} without BN and {100 * raw_bn.accuracy.mean:.1f} % ± "
            f"{100 * raw_bn.accuracy.std:.1f} with BN (the original single run: {100 * ORIGINAL_ACCURACY['plain']:.0f} "
            f"% and {100 * ORIGINAL_ACCURACY['batchnorm']:.0f} %; always the majority class: "
            f"{100 * baseline_majority:.1f} %)."
        )
    for scaling in ("raw", "standardized"):
        rows = [c for c in claim_rows if c.scaling == scaling]
        if not rows:
            continue
        groups = {v: [c.claim for c in rows if c.verdict == v] for v in ("holds", "does not hold", "not shown")}
        text = "; ".join(f"{v}: {', '.join(names)}" for v, names in groups.items() if names)
        parts.append(f"On {scaling} inputs (corrected 95 % intervals) — {text}.")
    parts.append(
        "Best-epoch accuracies are picked on the validation set itself: they measure the fall from the peak, not a "
        "result."
    )
    return " ".join(parts)
