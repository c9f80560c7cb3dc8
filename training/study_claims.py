"""The experiment's claims, each measured by the study and tested as the plan (`training.study_plan`) declares.

Every claim gets its test's raw p-value and the Holm-adjusted one over the whole table; the verdict follows the
plan's rules from those numbers alone. A part that was not run leaves its claims "not shown" (and out of Holm's
family). Absence of evidence is never reported as evidence: a claim of no effect needs an equivalence test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from survival.study import (
    ArmSummary,
    Claim,
    Comparison,
    RegularizationCell,
    Scaling,
    Stat,
    SweepCell,
    TestName,
    Verdict,
    arm_name,
)
from survival.study_parts import LayerShift
from training.study_plan import ALPHA, CLAIMS, EQUIVALENCE_MARGIN, PlannedClaim
from training.study_stats import compare, corrected_t_test, exact_mcnemar, holm, t_interval, tost

# The experiment's single run (batch-norm-blog.md), quoted next to the study.
ORIGINAL_ACCURACY: Final[dict[str, float]] = {"plain": 0.69, "batchnorm": 0.71}
# (arm metric, higher is better, percentage points?) of the BN-minus-plain comparisons made on each scaling.
ARM_METRICS: Final[tuple[tuple[str, bool, bool], ...]] = (
    ("accuracy", True, True),
    ("log_loss", False, False),
    ("roc_auc", True, False),
    ("ece", False, True),
    ("acc_std_last", False, True),
    ("loss_std_last", False, False),
    ("peak_to_final", False, True),
    ("val_loss_auc", False, False),
    ("train_loss_auc", False, False),
    ("gap_accuracy", False, True),
    ("gap_log_loss", False, False),
)
POINTS: Final[frozenset[str]] = frozenset(m for m, _, pts in ARM_METRICS if pts)
# The plan's metric behind each default-part difference claim.
ARM_CLAIM_METRIC: Final[dict[str, str]] = {
    "accuracy": "accuracy",
    "steadier_accuracy": "acc_std_last",
    "steadier_loss": "loss_std_last",
    "peak_fall": "peak_to_final",
    "trains_faster": "train_loss_auc",
    "regularizes": "gap_log_loss",
}
# Claims measured in accuracy points (the rest in the metric's own unit).
POINT_CLAIMS: Final[frozenset[str]] = frozenset(
    {"accuracy", "steadier_accuracy", "peak_fall", "more_than_scaling", "same_as_scaling", "adds_nothing",
     "higher_lr", "fewer_collapses", "no_regularizer_needed", "longer_helps_bn"}
)  # fmt: skip
ICS_LAYER: Final[dict[str, str]] = {
    "ics_hidden2": "hidden layer 2",
    "ics_output": "output layer",
    "drift_hidden2": "hidden layer 2",
    "drift_output": "output layer",
}


def _values(arm: ArmSummary, metric: str) -> list[float]:
    value = getattr(arm, metric)
    assert isinstance(value, Stat)
    return value.values


def comparisons(arms: dict[str, ArmSummary], scalings: Sequence[Scaling], ratio: float) -> list[Comparison]:
    """BN minus plain on each scaling for every arm metric, and the input-scaling controls when both ran."""
    out = []

    def add(a: str, b: str, metric: str, higher: bool) -> None:
        out.append(compare(a, b, metric, _values(arms[a], metric), _values(arms[b], metric),
                           higher_is_better=higher, test_train_ratio=ratio))  # fmt: skip

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


def describe(c: Comparison) -> str:
    """'+2.6 points, corrected 95 % CI [-0.6, +5.8] (uncorrected [+0.9, +4.3]); better on 9 of 10'."""
    scale, unit, fmt = (100.0, " points", "+.1f") if c.metric in POINTS else (1.0, "", "+.3f")

    def ci(pair: tuple[float, float]) -> str:
        return f"[{scale * pair[0]:{fmt}}, {scale * pair[1]:{fmt}}]"

    n = c.ahead + c.tied + c.behind
    return (
        f"{scale * c.mean_diff:{fmt}}{unit}, corrected 95 % CI {ci(c.ci95_corrected)} (uncorrected {ci(c.ci95)}); "
        f"better on {c.ahead} of {n}"
    )


@dataclass(frozen=True)
class Measured:
    """A claim measured but not yet adjusted: the raw test result and the text describing it."""

    plan: PlannedClaim
    scaling: Scaling
    test: TestName
    estimate: float | None
    ci95: tuple[float, float] | None
    p_value: float | None
    text: str


def _fmt(plan: PlannedClaim, value: float) -> str:
    return f"{100 * value:+.1f}" if plan.id in POINT_CLAIMS else f"{value:+.3g}"


def _difference(plan: PlannedClaim, scaling: Scaling, diffs: Sequence[float], ratio: float) -> Measured:
    arr = np.asarray(diffs, dtype=np.float64)
    low, high = t_interval(arr.tolist(), ratio)
    better = int((arr > 0).sum() if plan.higher_is_better else (arr < 0).sum())
    unit = " points" if plan.id in POINT_CLAIMS else ""
    text = (f"{_fmt(plan, float(arr.mean()))}{unit}, corrected 95 % CI [{_fmt(plan, low)}, {_fmt(plan, high)}]; "
            f"better on {better} of {arr.size}")  # fmt: skip
    return Measured(plan, scaling, "corrected paired t", float(arr.mean()), (low, high),
                    corrected_t_test(arr.tolist(), ratio), text)  # fmt: skip


def _equivalence(plan: PlannedClaim, scaling: Scaling, named: dict[str, Sequence[float]], ratio: float) -> Measured:
    """Equivalence of every named difference (intersection-union: the largest TOST p decides)."""
    tests = {name: (tost(d, ratio, EQUIVALENCE_MARGIN), d) for name, d in named.items()}
    binding = max(tests, key=lambda k: tests[k][0])
    parts = []
    for name, (p, d) in tests.items():
        low, high = t_interval(list(d), ratio)
        prefix = f"{name}: " if len(tests) > 1 else ""
        parts.append(f"{prefix}{100 * float(np.mean(d)):+.1f} points, corrected 95 % CI [{100 * low:+.1f}, "
                     f"{100 * high:+.1f}], TOST p = {p:.3g}")  # fmt: skip
    p, d = tests[binding]
    text = "; ".join(parts) + f"; margin +-{100 * EQUIVALENCE_MARGIN:.0f} points"
    return Measured(plan, scaling, "corrected TOST", float(np.mean(d)), t_interval(list(d), ratio), p, text)


def _not_run(plan: PlannedClaim, scaling: Scaling, why: str) -> Measured:
    return Measured(plan, scaling, "not run", None, None, None, f"not run ({why})")


def _high_rate_cells(cells: Sequence[SweepCell], scaling: Scaling) -> list[tuple[SweepCell, SweepCell]]:
    """(BN, plain) cells above each optimizer's lowest learning rate."""
    by = {(c.optimizer, c.learning_rate, c.variant): c for c in cells if c.scaling == scaling}
    pairs = []
    for optimizer in sorted({o for o, _, _ in by}):
        for lr in sorted({r for o, r, _ in by if o == optimizer})[1:]:
            pairs.append((by[(optimizer, lr, "batchnorm")], by[(optimizer, lr, "plain")]))
    return pairs


def _sweep(plan: PlannedClaim, scaling: Scaling, cells: Sequence[SweepCell], ratio: float) -> Measured:
    pairs = _high_rate_cells(cells, scaling)
    if plan.kind == "difference":
        per_cell = np.array([np.subtract(bn.accuracy.values, pl.accuracy.values) for bn, pl in pairs])
        measured = _difference(plan, scaling, per_cell.mean(axis=0).tolist(), ratio)
        names = ", ".join(f"{bn.optimizer} {bn.learning_rate:g}" for bn, _ in pairs)
        return replace(measured, text=f"{measured.text} (cells {names})")
    bn_runs = [x for bn, _ in pairs for x in bn.collapsed_runs]
    plain_runs = [x for _, pl in pairs for x in pl.collapsed_runs]
    only_bn, only_plain, p = exact_mcnemar(bn_runs, plain_runs)
    n = len(bn_runs)
    estimate = (sum(bn_runs) - sum(plain_runs)) / n
    text = (f"collapsed {sum(bn_runs)} of {n} runs with BN, {sum(plain_runs)} of {n} without; only BN {only_bn}, "
            f"only plain {only_plain}; exact McNemar p = {p:.3g}")  # fmt: skip
    return Measured(plan, scaling, "exact McNemar", estimate, None, p, text)


def _long(plan: PlannedClaim, scaling: Scaling, arms: dict[str, ArmSummary], main: int, ratio: float) -> Measured:
    bn, plain = arms[arm_name("batchnorm", scaling)], arms[arm_name("plain", scaling)]
    last = max(p.epoch for p in bn.at_epochs)
    if last <= main:
        return _not_run(plan, scaling, "--long trains to 1000 epochs")

    def gain(arm: ArmSummary) -> np.ndarray:
        at = {p.epoch: p.accuracy.values for p in arm.at_epochs}
        return np.subtract(at[last], at.get(main, arm.accuracy.values))

    g_bn, g_plain = gain(bn), gain(plain)
    measured = _difference(plan, scaling, (g_bn - g_plain).tolist(), ratio)
    text = (f"{measured.text} (BN {100 * g_bn.mean():+.1f}, plain {100 * g_plain.mean():+.1f} points from epoch "
            f"{main} to {last})")  # fmt: skip
    return replace(measured, text=text)


def _ics(plan: PlannedClaim, scaling: Scaling, shifts: Sequence[LayerShift], ratio: float) -> Measured:
    by = {s.variant: s for s in shifts if s.scaling == scaling}
    layer = ICS_LAYER[plan.id]

    def values(shift: LayerShift) -> list[float] | None:
        if plan.id.startswith("ics_"):
            return next((x.l2.values for x in shift.ics if x.layer == layer), None)
        return next((x.drift.values for x in shift.input_drift if x.layer == layer), None)

    bn, plain = values(by["batchnorm"]), values(by["plain"])
    if bn is None or plain is None:
        return _not_run(plan, scaling, f"the network has no {layer}")
    return _difference(plan, scaling, np.subtract(bn, plain).tolist(), ratio)


def measure(
    arms: dict[str, ArmSummary],
    scalings: Sequence[Scaling],
    *,
    main_epoch: int,
    ratio: float,
    sweep: Sequence[SweepCell] | None,
    regularization: Sequence[RegularizationCell] | None,
    ics: Sequence[LayerShift] | None,
) -> list[Measured]:
    """Every planned claim on every planned scaling that ran, measured and tested (not yet adjusted)."""
    out: list[Measured] = []
    for scaling in scalings:
        bn, plain = arms[arm_name("batchnorm", scaling)], arms[arm_name("plain", scaling)]
        for plan in CLAIMS:
            if scaling not in plan.scalings:
                continue
            if plan.id in ARM_CLAIM_METRIC:
                metric = ARM_CLAIM_METRIC[plan.id]
                out.append(_difference(plan, scaling, np.subtract(_values(bn, metric), _values(plain, metric)).tolist(),
                                       ratio))  # fmt: skip
            elif plan.id in ("more_than_scaling", "same_as_scaling"):
                if "plain/standardized" not in arms:
                    out.append(_not_run(plan, scaling, "needs both scalings"))
                    continue
                d = np.subtract(bn.accuracy.values, arms["plain/standardized"].accuracy.values).tolist()
                kind = _difference(plan, scaling, d, ratio) if plan.kind == "difference" else None
                out.append(kind or _equivalence(plan, scaling, {"": d}, ratio))
            elif plan.id == "adds_nothing":
                d = np.subtract(bn.accuracy.values, plain.accuracy.values).tolist()
                out.append(_equivalence(plan, scaling, {"": d}, ratio))
            elif plan.part == "sweep":
                out.append(_sweep(plan, scaling, sweep, ratio) if sweep else _not_run(plan, scaling, "--sweep"))
            elif plan.part == "regularization":
                out.append(_regularization(plan, scaling, regularization, ratio) if regularization
                           else _not_run(plan, scaling, "--regularization"))  # fmt: skip
            elif plan.part == "long":
                out.append(_long(plan, scaling, arms, main_epoch, ratio))
            elif plan.part == "ics":
                out.append(_ics(plan, scaling, ics, ratio) if ics else _not_run(plan, scaling, "--ics"))
    return out


def _regularization(
    plan: PlannedClaim, scaling: Scaling, cells: Sequence[RegularizationCell], ratio: float
) -> Measured:
    by = {(c.regularization, c.variant): c for c in cells if c.scaling == scaling}
    none = by[("none", "batchnorm")].accuracy.values
    named = {reg: np.subtract(by[(reg, "batchnorm")].accuracy.values, none).tolist()
             for reg in ("dropout 0.2", "weight decay 1e-3")}  # fmt: skip
    return _equivalence(plan, scaling, named, ratio)


def _verdict(m: Measured, p_holm: float | None) -> Verdict:
    if p_holm is None or m.estimate is None or p_holm >= ALPHA:
        return "not shown"
    if m.plan.kind == "equivalence":
        return "holds"
    return "holds" if (m.estimate > 0) == m.plan.higher_is_better else "does not hold"


def adjust(measured: Sequence[Measured]) -> list[Claim]:
    """Holm over every claim that was tested, then each verdict by the plan's rules."""
    tested = [i for i, m in enumerate(measured) if m.p_value is not None]
    adjusted = dict(zip(tested, holm([measured[i].p_value or 0.0 for i in tested]), strict=True))
    out = []
    for i, m in enumerate(measured):
        p_holm = adjusted.get(i)
        tail = "" if m.p_value is None else f"; p = {m.p_value:.3g}, Holm p = {p_holm:.3g}"
        out.append(
            Claim(
                id=f"{m.plan.id}/{m.scaling}",
                claim=m.plan.claim,
                scaling=m.scaling,
                measurement=m.plan.measurement,
                test=m.test,
                estimate=m.estimate,
                ci95=m.ci95,
                margin=EQUIVALENCE_MARGIN if m.plan.kind == "equivalence" else None,
                p_value=m.p_value,
                p_holm=p_holm,
                result=m.text + tail,
                verdict=_verdict(m, p_holm),
            )
        )
    return out
