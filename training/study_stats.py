"""Statistics of the study: summaries, paired intervals and tests (plain and Nadeau-Bengio corrected), exact
tests for counts, Holm's correction and the power of the corrected t test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

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


def corrected_se(diffs: Sequence[float], test_train_ratio: float) -> float:
    """Nadeau-Bengio standard error of the mean of `diffs`: sqrt((1/J + n_test/n_train) s^2)."""
    arr = np.asarray(diffs, dtype=np.float64)
    return math.sqrt((1 / arr.size + test_train_ratio) * float(arr.var(ddof=1)))


def corrected_t_test(diffs: Sequence[float], test_train_ratio: float) -> float:
    """Two-sided p-value of the corrected resampled t test of mean(diffs) = 0 (J-1 degrees of freedom)."""
    arr = np.asarray(diffs, dtype=np.float64)
    se = corrected_se(diffs, test_train_ratio)
    if se == 0.0:
        return 1.0 if float(arr.mean()) == 0.0 else 0.0
    t = float(arr.mean()) / se
    return float(2 * sps.t.sf(abs(t), df=arr.size - 1))


def tost(diffs: Sequence[float], test_train_ratio: float, margin: float) -> float:
    """p-value of two one-sided corrected t tests that mean(diffs) lies within (-margin, +margin).

    The larger of the two one-sided p-values: below alpha, the mean difference is shown to be inside the margin.
    """
    arr = np.asarray(diffs, dtype=np.float64)
    se, mean, df = corrected_se(diffs, test_train_ratio), float(arr.mean()), arr.size - 1
    if se == 0.0:
        return 0.0 if abs(mean) < margin else 1.0
    p_above_lower = float(sps.t.sf((mean + margin) / se, df=df))  # H0: mean <= -margin
    p_below_upper = float(sps.t.cdf((mean - margin) / se, df=df))  # H0: mean >= +margin
    return max(p_above_lower, p_below_upper)


def exact_mcnemar(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """(runs where only a had the event, runs where only b had it, two-sided exact McNemar p) for paired runs."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} paired outcomes against {len(b)}")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def sign_test(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int, float]:
    """(a smaller, b smaller, ties, two-sided exact sign test p) of paired values; ties are dropped."""
    less = sum(1 for x, y in zip(a, b, strict=True) if x < y)
    more = sum(1 for x, y in zip(a, b, strict=True) if x > y)
    ties = len(a) - less - more
    p = float(sps.binomtest(less, less + more, 0.5).pvalue) if less + more else 1.0
    return less, more, ties, p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (statsmodels), in the input order."""
    if not p_values:
        return []
    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


def power_of(effect: float, se: float, df: int, alpha: float) -> float:
    """Power of the two-sided t test at level alpha when the true mean is `effect` and its standard error `se`."""
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    nc = effect / se
    # The far tail (a significant result in the wrong direction) is negligible; scipy's nct gives NaN for it
    # at a large noncentrality, so it counts as 0 there.
    far = float(sps.nct.cdf(-crit, df, nc))
    return float(sps.nct.sf(crit, df, nc)) + (far if math.isfinite(far) else 0.0)


def mde(sd: float, resamples: int, test_train_ratio: float, alpha: float, power: float) -> float:
    """The smallest true mean difference the corrected t test detects with `power` (noncentral t)."""
    se = math.sqrt((1 / resamples + test_train_ratio) * sd**2)
    if se == 0.0:
        return 0.0
    df = resamples - 1
    # Bracket the root: the power rises with the effect; widen until it passes the target.
    high = (float(sps.t.ppf(1 - alpha / 2, df)) + 1) * se
    while power_of(high, se, df, alpha) < power:
        high *= 1.5
    return float(optimize.brentq(lambda d: power_of(d, se, df, alpha) - power, 0.0, high))


def mde_limit(sd: float, test_train_ratio: float, alpha: float, power: float) -> float:
    """The MDE as the number of resamples grows without bound: the correction's floor, sqrt(ratio) * sd."""
    return float((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * sd * math.sqrt(test_train_ratio))


def seeds_needed(
    effect: float, sd: float, per_seed: int, test_train_ratio: float, alpha: float, power: float
) -> int | None:
    """Fewest seeds (each `per_seed` resamples) whose MDE is at most `effect`; None when the floor is above it."""
    if mde_limit(sd, test_train_ratio, alpha, power) >= effect:
        return None
    low, high = 2, 2
    while mde(sd, high * per_seed, test_train_ratio, alpha, power) > effect:
        low, high = high, high * 2
        if high > 10**7:
            return None
    while low < high:
        mid = (low + high) // 2
        if mde(sd, mid * per_seed, test_train_ratio, alpha, power) > effect:
            low = mid + 1
        else:
            high = mid
    return high
