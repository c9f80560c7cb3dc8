"""Statistics of the multi-seed study: summaries, paired confidence intervals, and the verdict written from them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
from scipy import stats as sps

from survival.study import MetricName, PairedComparison, Stat, StudyReport, SweepCell

CONFIDENCE: Final[float] = 0.95
PAIRED_METHOD: Final[str] = "paired t interval (scipy.stats.t, n-1 degrees of freedom) on per-seed differences"
# The accuracy of the experiment's single run (batch-norm-blog.md), quoted in the verdict for comparison.
ORIGINAL_ACCURACY: Final[dict[str, float]] = {"plain": 0.69, "batchnorm": 0.71}

Finding = Literal["better", "worse", "unclear"]


def stat(values: Sequence[float]) -> Stat:
    """Mean, sample std (ddof=1; 0 for a single value) and the values themselves."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return Stat(mean=float(arr.mean()), std=std, values=[float(v) for v in arr])


def t_interval(diffs: Sequence[float]) -> tuple[float, float]:
    """95 % paired t confidence interval of the mean of `diffs` (a point when they are all equal)."""
    arr = np.asarray(diffs, dtype=np.float64)
    if arr.size < 2:
        raise ValueError("a confidence interval needs at least two seeds")
    mean, sem = float(arr.mean()), float(arr.std(ddof=1)) / math.sqrt(arr.size)
    if sem == 0.0:
        return mean, mean
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, df=arr.size - 1)) * sem
    return mean - half, mean + half


def paired(
    metric: MetricName, batchnorm: Sequence[float], plain: Sequence[float], *, higher_is_better: bool
) -> PairedComparison:
    """Batchnorm minus plain over seeds (the two lists in the same seed order), with a 95 % CI and counts."""
    if len(batchnorm) != len(plain):
        raise ValueError(f"{metric}: {len(batchnorm)} batchnorm values but {len(plain)} plain values")
    diffs = np.asarray(batchnorm, dtype=np.float64) - np.asarray(plain, dtype=np.float64)
    better = diffs > 0 if higher_is_better else diffs < 0
    tied = diffs == 0
    return PairedComparison(
        metric=metric,
        mean_diff=float(diffs.mean()),
        ci95=t_interval(diffs.tolist()),
        method=PAIRED_METHOD,
        ahead=int(better.sum()),
        tied=int(tied.sum()),
        behind=int((~better & ~tied).sum()),
        higher_is_better=higher_is_better,
    )


def finding(comparison: PairedComparison) -> Finding:
    """Whether batchnorm is better, worse, or not distinguishable (the 95 % CI includes zero)."""
    low, high = comparison.ci95
    if low > 0 or high < 0:
        bn_higher = low > 0
        return "better" if bn_higher == comparison.higher_is_better else "worse"
    return "unclear"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def _ci_pts(comparison: PairedComparison) -> str:
    return f"95 % CI [{_pts(comparison.ci95[0])}, {_pts(comparison.ci95[1])}] points"


def high_lr_cells(cells: Sequence[SweepCell]) -> list[tuple[str, float]]:
    """The (optimizer, learning rate) pairs above each optimizer's smallest swept rate."""
    out: list[tuple[str, float]] = []
    for optimizer in sorted({c.optimizer for c in cells}):
        rates = sorted({c.learning_rate for c in cells if c.optimizer == optimizer})
        out += [(optimizer, lr) for lr in rates[1:]]
    return out


def _accuracy_claim(report: StudyReport) -> str:
    acc = next(p for p in report.paired if p.metric == "accuracy")
    bn, plain = report.variants["batchnorm"].accuracy, report.variants["plain"].accuracy
    base = report.baseline_accuracy
    found = finding(acc)
    judged = {
        "better": "held",
        "worse": "did not hold: BN was lower",
        "unclear": "not shown: the interval includes zero",
    }[found]
    return (
        f"Over {len(report.seeds)} seeds, final validation accuracy (mean ± std) was {_pct(plain.mean)} ± "
        f"{_pct(plain.std)} without BN and {_pct(bn.mean)} ± {_pct(bn.std)} with BN (the original single run: "
        f"{_pct(ORIGINAL_ACCURACY['plain'])} and {_pct(ORIGINAL_ACCURACY['batchnorm'])}"
        + (f"; always predicting the majority class: {_pct(base.mean)}" if base is not None else "")
        + "). "
        f"Higher final accuracy with BN {judged} (BN minus plain {_pts(acc.mean_diff)} points, {_ci_pts(acc)}; "
        f"BN ahead on {_seeds(acc.ahead)}, tied on {acc.tied}, behind on {acc.behind})."
    )


def _stability_claim(report: StudyReport) -> str:
    bn, plain = report.variants["batchnorm"].stability_last50, report.variants["plain"].stability_last50
    comparison = report.paired_stability
    if comparison is None:
        return ""
    judged = {
        "better": "held",
        "worse": "did not hold: BN's curve moved more",
        "unclear": "not shown: the interval includes zero",
    }[finding(comparison)]
    return (
        f"A steadier validation curve with BN {judged} (std of validation accuracy over the last "
        f"{report.stability_window} epochs: {_pct(bn.mean)} with BN, {_pct(plain.mean)} without; "
        f"BN minus plain {_ci_pts(comparison)})."
    )


def _sweep_claim(report: StudyReport) -> str:
    if not report.sweep:
        return "Tolerance of higher learning rates was not tested (run the study with --sweep)."
    cells: dict[tuple[str, float, str], SweepCell] = {
        (c.optimizer, c.learning_rate, c.variant): c for c in report.sweep
    }
    better, worse, collapsed = [], [], {"batchnorm": 0, "plain": 0}
    high = high_lr_cells(report.sweep)
    for optimizer, lr in high:
        bn, plain = cells[(optimizer, lr, "batchnorm")], cells[(optimizer, lr, "plain")]
        comparison = paired("accuracy", bn.accuracy.values, plain.accuracy.values, higher_is_better=True)
        label = f"{optimizer} {lr:g}"
        found = finding(comparison)
        if found == "better":
            better.append(label)
        elif found == "worse":
            worse.append(label)
        collapsed["batchnorm"] += bn.collapsed
        collapsed["plain"] += plain.collapsed
    runs = sum(cells[(o, lr, "plain")].runs for o, lr in high)
    if better and not worse:
        judged = "held"
    elif worse and not better:
        judged = "did not hold"
    elif better and worse:
        judged = "was mixed"
    else:
        judged = "was not shown"
    labels = ", ".join(f"{o} {lr:g}" for o, lr in high)
    detail = (
        f"of the {len(high)} higher learning rates ({labels}), BN's final accuracy was significantly higher at "
        f"{' and '.join(better) or 'none'} and significantly lower at {' and '.join(worse) or 'none'} (paired 95 % "
        f"CIs); {collapsed['batchnorm']} of {runs} BN runs and {collapsed['plain']} of {runs} plain runs collapsed "
        "to predicting a single class there"
    )
    return f"Tolerance of higher learning rates {judged}: {detail}."


def verdict(report: StudyReport) -> str:
    """A plain-language paragraph on which of the experiment's claims held, written from the report's numbers."""
    bn_best, plain_best = report.variants["batchnorm"], report.variants["plain"]
    caveat = (
        f"Best-epoch accuracies ({_pct(bn_best.best_epoch_accuracy.mean)} with BN, "
        f"{_pct(plain_best.best_epoch_accuracy.mean)} without) are optimistic, being picked on the validation "
        "set itself, and are not results."
    )
    parts = [_accuracy_claim(report), _stability_claim(report), _sweep_claim(report), caveat]
    return " ".join(p for p in parts if p)
