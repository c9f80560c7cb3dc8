"""The null distributions of the drift tests, in NumPy and the standard library (no scipy in the serving path).

scipy.stats would cost every worker about 64 MiB and two seconds of CPU to import (measured by
bench/bench_footprint.py), which alone broke the 120 MB-per-worker target and slowed a new worker's first
seconds; these few functions are all the serving path needs of it.
tests/service/monitoring/test_monitoring_stats.py checks each against scipy.stats (ks_2samp, chi2, norm) on
hypothesis-drawn samples.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Final

import numpy as np

from survival.features import FloatArray

# scipy.stats.ks_2samp's "auto" rule: the exact distribution while both samples have at most this many values,
# Kolmogorov's limit beyond (the exact one costs O(min(n1, n2) * max(n1, n2))).
EXACT_MAX_N: Final[int] = 10_000
RESCALE_EVERY: Final[int] = 16  # rows between rescalings: a row grows by at most n + 1 <= 2**14, 16 rows < 2**230
_STANDARD_NORMAL: Final[NormalDist] = NormalDist()


def ks_statistic(a: FloatArray, b: FloatArray) -> tuple[int, int, int]:
    """The two-sample KS statistic D of sorted-or-not samples a, b, as the integer D * len(a) * len(b)."""
    a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    # n_b * #(a <= x) - n_a * #(b <= x) is (F_a(x) - F_b(x)) * n_a * n_b exactly: no float rounding of D.
    diff = b.size * np.searchsorted(a, both, side="right") - a.size * np.searchsorted(b, both, side="right")
    return int(np.abs(diff).max()), int(a.size), int(b.size)


def ks_sf_exact(scaled_d: int, n1: int, n2: int) -> float:
    """P(D >= d) under the null for continuous samples of sizes n1, n2, with scaled_d = d * n1 * n2.

    Counts the lattice paths from (0, 0) to (m, n) that leave the band |i * n - j * m| < scaled_d (Hodges 1958):
    row by row, the paths still inside are a cumulative sum of the row below over the band, and every path
    leaving it is weighted by the unrestricted paths from its first outside point to (m, n). Adding only
    positive terms keeps a tiny p-value's relative precision.
    """
    if scaled_d <= 0:
        return 1.0
    m, n = sorted((n1, n2))  # rows over the smaller sample: fewer Python iterations
    rows = np.arange(m + 1)
    lo_arr = np.maximum((rows * n - scaled_d) // m + 1, 0)
    hi_arr = np.minimum(-((-(rows * n + scaled_d)) // m) - 1, n)
    if (lo_arr > hi_arr).any():
        return 1.0  # a row with no point inside the band: every path crosses it outside
    lo, hi = lo_arr.tolist(), hi_arr.tolist()
    inside = np.zeros(n + 1)
    inside[: hi[0] + 1] = 1.0
    # The paths leaving the band, with the binary exponent of their row's scale. Column j leaves it below
    # once, when the band's bottom passes it: the paths at (i - 1, j) step up into the outside point (i, j).
    below, below_exponent = np.zeros(n + 1), np.zeros(n + 1)
    # In every row whose band ends before n, the paths at its top step right, out of it.
    top, top_exponent = np.zeros(m + 1), np.zeros(m + 1)
    top[0] = 1.0 if hi[0] < n else 0.0
    exponent = 0
    accumulate = np.add.accumulate  # in place, twice as fast as ndarray.cumsum here
    for i in range(1, m + 1):
        lo_i, hi_i, lo_prev = lo[i], hi[i], lo[i - 1]
        if lo_i > lo_prev:
            below[lo_prev:lo_i] = inside[lo_prev:lo_i]
            below_exponent[lo_prev:lo_i] = exponent
        # Row i inside the band: the cumulative sum of row i - 1 over it. Nothing below the band is read
        # again (it only moves up), and above the row's band nothing was ever written: no clearing needed.
        band = inside[lo_i : hi_i + 1]
        accumulate(band, out=band)
        if hi_i < n:
            top[i], top_exponent[i] = band[-1], exponent
        if i % RESCALE_EVERY == 0:
            shift = math.frexp(float(band[-1]))[1]  # the row's largest value (a cumulative sum)
            inside *= 2.0**-shift  # a power of two: exact
            exponent += shift
    columns = np.arange(n + 1)
    i_arr = np.concatenate([np.searchsorted(lo_arr, columns, side="right"), rows])
    j_arr = np.concatenate([columns, hi_arr + 1])
    paths = np.concatenate([below, top])
    exps = np.concatenate([below_exponent, top_exponent])
    keep = paths > 0
    i_arr, j_arr, paths, exps = i_arr[keep], j_arr[keep], paths[keep], exps[keep]
    log_factorial = _log_factorials(m + n)
    # Each leaving path goes on to (m, n) freely: C((m - i) + (n - j), m - i) ways, of C(m + n, m) in all.
    onward = (m - i_arr) + (n - j_arr)
    log_share = (
        log_factorial[onward] - log_factorial[m - i_arr] - log_factorial[n - j_arr] - _log_comb(log_factorial, m, n)
    )
    return float(np.exp(np.log(paths) + exps * math.log(2) + log_share).sum())


@lru_cache(maxsize=8)
def _log_factorials(n: int) -> FloatArray:
    """log k! for k = 0..n (math.lgamma: NumPy has no log-gamma; the same sizes recur at every report)."""
    table = np.array([math.lgamma(k + 1) for k in range(n + 1)])
    table.flags.writeable = False
    return table


def _log_comb(log_factorial: FloatArray, m: int, n: int) -> float:
    return float(log_factorial[m + n] - log_factorial[m] - log_factorial[n])


def kolmogorov_sf(x: float) -> float:
    """Kolmogorov's limit distribution: P(K > x) = 2 * sum_k (-1)^(k-1) exp(-2 k^2 x^2)."""
    if x <= 0.2:  # the series converges slowly here, and the answer is 1 to 12 digits (1 - 5e-13 at 0.2)
        return 1.0
    terms = [(-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101)]
    return min(1.0, 2 * math.fsum(terms))


def ks_2samp(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """Two-sided two-sample KS test: (D, p), exact up to EXACT_MAX_N values per sample, asymptotic beyond."""
    scaled_d, n1, n2 = ks_statistic(a, b)
    d = scaled_d / (n1 * n2)
    if max(n1, n2) <= EXACT_MAX_N:
        return d, ks_sf_exact(scaled_d, n1, n2)
    return d, kolmogorov_sf(math.sqrt(n1 * n2 / (n1 + n2)) * d)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with integer df >= 1: the regularized upper gamma Q(df/2, x/2).

    Closed forms: Q(k, y) = exp(-y) * sum_{i<k} y^i / i! for whole k, and for k = r + 1/2 the same with
    erfc(sqrt(y)) plus exp(-y) * sum_{i=1..r} y^(i-1/2) / Gamma(i + 1/2).
    """
    if x <= 0:
        return 1.0
    y = x / 2
    if df % 2 == 0:
        term = total = 1.0
        for i in range(1, df // 2):
            term *= y / i
            total += term
        return math.exp(-y) * total
    term, series = 2 * math.sqrt(y / math.pi), 0.0
    for i in range(1, (df - 1) // 2 + 1):
        series += term
        term *= y / (i + 0.5)
    return math.erfc(math.sqrt(y)) + math.exp(-y) * series


def chi2_contingency(table: np.ndarray[tuple[int, int], np.dtype[np.int64]]) -> tuple[float, float]:
    """Pearson's chi-square test of homogeneity (no continuity correction): (statistic, p)."""
    observed = table.astype(float)
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    df = (table.shape[0] - 1) * (table.shape[1] - 1)
    return statistic, chi2_sf(statistic, df)


def normal_two_sided(z: float) -> float:
    """P(|Z| > |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


def normal_isf(p: float) -> float:
    """z with P(Z > z) = p for a standard normal Z."""
    return -_STANDARD_NORMAL.inv_cdf(p)
