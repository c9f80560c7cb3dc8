"""The paired comparison of the two models on the same labelled passengers: counts, test, interval and sequence.

Each labelled pair gives X = 1[batchnorm right] - 1[plain right] in {-1, 0, 1}; the accuracy difference is the
mean of X, (b - c) / n with b = only batchnorm right and c = only plain right.

- McNemar's exact test: under "equally accurate" each discordant pair is a fair coin, so b ~ Bin(b + c, 1/2).
- The Wald interval is the fixed-n interval: it holds for one n chosen in advance, not for a report read after
  every outcome and acted on when it looks decisive (that peeking inflates its error far above alpha).
- The confidence sequence is what may be read at every n: Howard, Ramdas, McAuliffe & Sekhon (2021),
  "Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics 49(2), their
  empirical-Bernstein sequence (Theorem 4) with the polynomial stitched boundary (Theorem 1). For X_i in [a, b]
  and any predictable X^_{i-1} in [a, b] (here the mean of the earlier pairs, 0 before the first),
  S_t = sum(X_i - mu_i) is sub-exponential, hence sub-gamma, with variance process V_t = sum((X_i - X^_{i-1})^2)
  and scale c = b - a = 2 (Fan et al.'s inequality exp(l y - y^2 (-log(1 - l) - l)) <= 1 + l y for y >= -1).
  So |mean_t - mu~_t| < u(V_t) / t for all t at once with probability >= 1 - alpha, u the stitched boundary at
  alpha / 2 per side, mu~_t the mean of the pairs' conditional expectations so far: the accuracy difference
  on the traffic up to t, even if that drifts.
  Why not the paper's simpler normal mixture for 1-sub-Gaussian X: its variance proxy is the worst case
  Var(X) = 1, but two similar models disagree on few passengers, so Var(X) is about the discordant rate. V_t
  tracks that: with 10 % of the pairs discordant the sequence is about half as wide from a few thousand pairs on,
  narrower still at lower rates (tests/service/comparison/test_comparison_paired.py compares both); it is wider
  only below a few hundred pairs or when the models disagree on a large share of the passengers.
  No running intersection: mu~_t moves when the traffic drifts, and sets for different targets must not be
  intersected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np

from service.comparison.metrics import BoolArray
from service.comparison.schemas import PairedComparison
from survival.features import FloatArray

# The stitched boundary's shape, the paper's defaults: epochs growing geometrically by ETA, error spent on epoch k
# in proportion to 1 / (k + 1)^S (s > 1 keeps the sum finite; ZETA_S is that sum, Riemann's zeta(1.4), checked
# against scipy.special.zeta by the tests).
STITCH_S: Final[float] = 1.4
STITCH_ETA: Final[float] = 2.0
ZETA_S: Final[float] = 3.1055472779775806
# The boundary is flat below V_MIN and grows like log log(V / V_MIN) above it. Whatever V_MIN, it never falls below
# 23 at alpha = 0.05 (twice its linear term), so no sequence excludes 0 before two dozen discordant pairs (V_t is
# roughly their count): V_MIN = 10 costs little there and tightens the boundary a little everywhere above.
# A declared constant, not fitted to any data.
V_MIN: Final[float] = 10.0
RANGE: Final[float] = 2.0  # X in [-1, 1]: the sub-exponential scale c = b - a
_K1: Final[float] = (STITCH_ETA**0.25 + STITCH_ETA**-0.25) / math.sqrt(2)
_K2: Final[float] = (math.sqrt(STITCH_ETA) + 1) / 2
# Below the largest term P(X = k) the binomial terms fall at least as fast as exp(-2 j (j - 1) / m) j steps down
# (log((m - i + 1) / i) >= 4 (m / 2 - i) / m for i < m / 2). Past 6 sqrt(m) + 1 steps that is under e^-72, so
# the at most m neglected terms add less than m e^-72 relative (1e-25 at m = 10^6).
_TAIL_SQRT_STEPS: Final[int] = 6
_TAIL_EXTRA_STEPS: Final[int] = 7  # 6 isqrt(m) + 7 >= 6 sqrt(m) + 1
_BLOCK: Final[int] = 1 << 14  # log-ratios summed at a time: 128 KiB of doubles, well inside a core's cache


@dataclass(frozen=True)
class PairCounts:
    """The 2 x 2 table of labelled pairs: which of the two models was right."""

    both_right: int
    both_wrong: int
    only_batchnorm_right: int
    only_plain_right: int

    @property
    def n(self) -> int:
        """All pairs."""
        return self.both_right + self.both_wrong + self.only_batchnorm_right + self.only_plain_right

    @classmethod
    def of(cls, batchnorm_right: BoolArray, plain_right: BoolArray) -> PairCounts:
        """Count the pairs of two aligned correctness arrays."""
        both = int(np.count_nonzero(batchnorm_right & plain_right))
        only_batchnorm = int(np.count_nonzero(batchnorm_right)) - both
        only_plain = int(np.count_nonzero(plain_right)) - both
        return cls(both, batchnorm_right.size - both - only_batchnorm - only_plain, only_batchnorm, only_plain)


def _log_ratios(m: int, first: int, last: int) -> FloatArray:
    """log C(m, i) - log C(m, i - 1) = log((m - i + 1) / i) for i = first..last."""
    i = np.arange(first, last + 1, dtype=np.float64)
    return np.log((m + 1 - i) / i)


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: min(1, 2 P(X <= min(b, c))), X ~ Bin(b + c, 1/2); 1 when b + c = 0."""
    m, k = b + c, min(b, c)
    if 2 * k >= m:  # b == c (or no discordant pair): the lower tail alone holds half the mass or more
        return 1.0
    # NumPy has no lgamma: log C(m, k) is the sum of the log-ratios, added block by block (pairwise within a block,
    # which keeps the rounding inside the tests' 1e-9 at m = 10^6). Cache-sized blocks: one array of k doubles
    # would cost more in page faults and memory traffic than the logarithms (bench/bench_comparison_stats.py).
    log_largest = -m * math.log(2)
    for first in range(1, k + 1, _BLOCK):
        log_largest += float(_log_ratios(m, first, min(first + _BLOCK - 1, k)).sum())
    # The tail, relative to its largest term P(X = k): no term under- or overflows.
    width = min(k, _TAIL_SQRT_STEPS * math.isqrt(m) + _TAIL_EXTRA_STEPS)
    below = -np.cumsum(_log_ratios(m, k - width + 1, k)[::-1])  # log P(X = k - j) / P(X = k), j = 1..width
    return min(1.0, math.exp(math.log(2) + log_largest + math.log1p(float(np.exp(below).sum()))))


def wald_interval(counts: PairCounts, alpha: float) -> tuple[float, float] | None:
    """Fixed-n (1 - alpha) Wald interval of the accuracy difference, clipped to [-1, 1]; None without pairs."""
    n, b, c = counts.n, counts.only_batchnorm_right, counts.only_plain_right
    if n == 0:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2)
    half = z * math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n  # the pairs' X have variance (b+c)/n - d^2
    difference = (b - c) / n
    return max(difference - half, -1.0), min(difference + half, 1.0)


def stitched_boundary(v: FloatArray, alpha: float) -> FloatArray:
    """u(V): a sub-gamma process of scale RANGE crosses u(max(V_t, V_MIN)) at some t with probability <= alpha."""
    v = np.maximum(v, V_MIN)
    ell = STITCH_S * np.log(np.log(STITCH_ETA * v / V_MIN)) + math.log(ZETA_S / math.log(STITCH_ETA) ** STITCH_S)
    ell += math.log(1 / alpha)
    linear = _K2 * RANGE * ell
    root: FloatArray = np.sqrt(_K1**2 * v * ell + linear**2)
    return root + linear


def _running(differences: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Along the last axis, after each pair: the mean of X and the variance process V_t."""
    t = np.arange(1, differences.shape[-1] + 1)
    mean = np.cumsum(differences, axis=-1) / t
    # X^_{t-1}, the prediction of pair t from the pairs before it: predictable, and in [-1, 1] as a mean of them.
    before = np.concatenate([np.zeros_like(mean[..., :1]), mean[..., :-1]], axis=-1)
    return mean, np.cumsum((differences - before) ** 2, axis=-1)


def confidence_sequence_path(differences: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """The sequence's bounds after each pair (along the last axis, oldest first), clipped to [-1, 1]."""
    mean, v = _running(differences)
    radius = stitched_boundary(v, alpha / 2) / np.arange(1, differences.shape[-1] + 1)
    return np.maximum(mean - radius, -1.0), np.minimum(mean + radius, 1.0)


def confidence_sequence(differences: FloatArray, alpha: float) -> tuple[float, float] | None:
    """The anytime-valid (1 - alpha) sequence for the mean of X after all the pairs (oldest first); None without."""
    n = differences.shape[-1]
    if n == 0:
        return None
    mean, v = _running(differences)
    radius = float(stitched_boundary(v[-1:], alpha / 2)[0]) / n
    return max(float(mean[-1]) - radius, -1.0), min(float(mean[-1]) + radius, 1.0)


def paired_comparison(batchnorm_right: BoolArray, plain_right: BoolArray, alpha: float) -> PairedComparison:
    """Both models on the same labelled pairs (aligned, oldest first): the counts and what they show."""
    counts = PairCounts.of(batchnorm_right, plain_right)
    n, b, c = counts.n, counts.only_batchnorm_right, counts.only_plain_right
    differences = batchnorm_right.astype(np.float64) - plain_right.astype(np.float64)
    return PairedComparison(
        n=n,
        both_right=counts.both_right,
        both_wrong=counts.both_wrong,
        only_batchnorm_right=b,
        only_plain_right=c,
        accuracy_difference=(b - c) / n if n else None,
        mcnemar_p=mcnemar_p(b, c) if n else None,
        interval=wald_interval(counts, alpha),
        confidence_sequence=confidence_sequence(differences, alpha),
    )
