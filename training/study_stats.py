"""Statistics of the study: summaries and paired confidence intervals, plain and Nadeau-Bengio corrected."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
from scipy import stats as sps

from survival.study import Comparison, Stat

CONFIDENCE: Final[float] = 0.95

Finding = Literal["better", "worse", "unclear"]


def stat(values: Sequence[float]) -> Stat:
    """Mean, sample std (ddof=1; 0 for a single value) and the values themselves."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return Stat(mean=float(arr.mean()), std=std, values=[float(v) for v in arr])


def t_interval(diffs: Sequence[float], test_train_ratio: float = 0.0) -> tuple[float, float]:
    """95 % t interval of the mean of `diffs` over J resamples (J-1 degrees of freedom).

    With `test_train_ratio` = n_test / n_train > 0 it is the corrected resampled t of Nadeau & Bengio (2003,
    "Inference for the Generalization Error"): the variance of the mean is (1/J + n_test/n_train) s^2 instead of
    s^2 / J, because resampled training sets overlap and their results are correlated. For repeated k-fold
    (n_test/n_train = 1/(k-1)) this is Bouckaert & Frank's (2004) corrected repeated k-fold t.
    """
    arr = np.asarray(diffs, dtype=np.float64)
    if arr.size < 2:
        raise ValueError("a confidence interval needs at least two resamples")
    mean, var = float(arr.mean()), float(arr.var(ddof=1))
    scale = math.sqrt((1 / arr.size + test_train_ratio) * var)
    if scale == 0.0:
        return mean, mean
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, df=arr.size - 1)) * scale
    return mean - half, mean + half


def compare(
    a: str,
    b: str,
    metric: str,
    a_values: Sequence[float],
    b_values: Sequence[float],
    *,
    higher_is_better: bool,
    test_train_ratio: float,
) -> Comparison:
    """Arm `a` minus arm `b` resample by resample (the two lists in the same order), with both 95 % CIs."""
    if len(a_values) != len(b_values):
        raise ValueError(f"{metric}: {len(a_values)} values of {a} but {len(b_values)} of {b}")
    diffs = np.asarray(a_values, dtype=np.float64) - np.asarray(b_values, dtype=np.float64)
    better = diffs > 0 if higher_is_better else diffs < 0
    tied = diffs == 0
    return Comparison(
        a=a,
        b=b,
        metric=metric,
        higher_is_better=higher_is_better,
        mean_diff=float(diffs.mean()),
        ci95=t_interval(diffs.tolist()),
        ci95_corrected=t_interval(diffs.tolist(), test_train_ratio),
        ahead=int(better.sum()),
        tied=int(tied.sum()),
        behind=int((~better & ~tied).sum()),
    )


def finding(comparison: Comparison, *, corrected: bool = True) -> Finding:
    """Whether `a` is better, worse, or not distinguishable from `b` (the 95 % CI includes zero)."""
    low, high = comparison.ci95_corrected if corrected else comparison.ci95
    if low > 0 or high < 0:
        a_higher = low > 0
        return "better" if a_higher == comparison.higher_is_better else "worse"
    return "unclear"
