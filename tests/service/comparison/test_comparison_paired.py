"""The paired comparison (service/comparison/paired.py): counts, McNemar, the Wald interval, the confidence sequence.

McNemar's p-value is checked against statsmodels' exact test and scipy's binomial test up to a million discordant
pairs, the interval against the normal quantile and the pairs' standard deviation. The confidence sequence's
promise (it covers the accuracy difference at every n at once, with probability >= 1 - alpha) is checked by
simulation: thousands of streams of two equally accurate models, and streams whose difference drifts.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import mcnemar

from service.comparison import paired

REL = 1e-9
# Past about 1074 discordant pairs 2^-(b + c) underflows, and scipy's binomial test (statsmodels' too) answers 0 for
# tails that are still normal doubles, up to about 1e-270 (b, c = 24, 1051: 3.57e-275, the exact sum below); and a
# subnormal p-value has lost its relative precision anyway. Where a reference says 0 or a subnormal, the p-value is
# only required to be far below any alpha.
NEGLIGIBLE = 1e-200
STREAMS, STEPS, CHUNK = 2000, 5000, 500


def assert_p_value(b: int, c: int, expected: float) -> None:
    got = paired.mcnemar_p(b, c)
    if expected < sys.float_info.min:
        assert got < NEGLIGIBLE
    else:
        assert got == pytest.approx(expected, rel=REL)


def reference_p(b: int, c: int) -> tuple[float, float]:
    """statsmodels' exact McNemar and scipy's two-sided binomial test on the discordant pairs."""
    by_statsmodels = float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)
    by_scipy = scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    return by_statsmodels, float(by_scipy)


@settings(max_examples=300, deadline=None)
@given(b=st.integers(0, 3000), c=st.integers(0, 3000))
def test_mcnemar_p_equals_statsmodels_and_scipy(b: int, c: int) -> None:
    for expected in reference_p(b, c):
        assert_p_value(b, c, expected)


@settings(max_examples=100, deadline=None)
@given(m=st.integers(1, 1_000_000), share=st.floats(0.45, 0.5))
def test_mcnemar_p_equals_scipy_near_the_middle_of_large_samples(m: int, share: float) -> None:
    """Where the p-value is neither 1 nor tiny even with many discordant pairs: the regime a live comparison is in."""
    b = round(m * share)
    assert_p_value(b, m - b, reference_p(b, m - b)[1])


@pytest.mark.parametrize(
    ("b", "c"),
    [
        (0, 0),
        (0, 1),
        (1, 0),
        (0, 1_000_000),
        (1, 999_999),
        (400, 600),
        (499_000, 501_000),
        (499_999, 500_001),
        (500_000, 500_000),
        (450_000, 550_000),
        (497_500, 502_500),
        (1234, 987_654),
        (200_000, 200_900),
    ],
)
def test_mcnemar_p_is_exact_up_to_a_million_discordant_pairs(b: int, c: int) -> None:
    for expected in reference_p(b, c):
        assert_p_value(b, c, expected)
    assert paired.mcnemar_p(b, c) == paired.mcnemar_p(c, b)


@pytest.mark.parametrize(("b", "c"), [(10, 1065), (0, 2000), (3, 40), (900, 1100), (2400, 2600), (4990, 5010)])
def test_mcnemar_p_equals_the_exact_rational_sum(b: int, c: int) -> None:
    """Python's integers sum the binomial coefficients exactly (in the deep tail scipy has underflowed already)."""
    m, k = b + c, min(b, c)
    coefficient = total = 1
    for i in range(k):
        coefficient = coefficient * (m - i) // (i + 1)
        total += coefficient
    assert paired.mcnemar_p(b, c) == pytest.approx(float(min(Fraction(1), Fraction(2 * total, 2**m))), rel=REL)


@settings(max_examples=100, deadline=None)
@given(outcomes=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200))
def test_pair_counts_equal_a_tally_of_the_pairs(outcomes: list[tuple[bool, bool]]) -> None:
    tally = Counter(outcomes)
    batchnorm = np.array([b for b, _ in outcomes], dtype=bool)
    plain = np.array([p for _, p in outcomes], dtype=bool)
    counts = paired.PairCounts.of(batchnorm, plain)
    assert counts == paired.PairCounts(
        both_right=tally[True, True],
        both_wrong=tally[False, False],
        only_batchnorm_right=tally[True, False],
        only_plain_right=tally[False, True],
    )
    assert counts.n == len(outcomes)


@settings(max_examples=100, deadline=None)
@given(
    outcomes=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_wald_interval_is_the_normal_interval_of_the_pairs_differences(
    outcomes: list[tuple[bool, bool]], alpha: float
) -> None:
    x = np.array([float(b) - float(p) for b, p in outcomes])
    counts = paired.PairCounts.of(np.array([b for b, _ in outcomes]), np.array([p for _, p in outcomes]))
    half = scipy.stats.norm.ppf(1 - alpha / 2) * x.std() / math.sqrt(x.size)
    interval = paired.wald_interval(counts, alpha)
    assert interval is not None
    assert interval == pytest.approx((max(x.mean() - half, -1), min(x.mean() + half, 1)), abs=1e-12)


def test_no_pairs_have_no_interval_sequence_or_p_value() -> None:
    none = np.array([], dtype=bool)
    assert paired.wald_interval(paired.PairCounts(0, 0, 0, 0), 0.05) is None
    assert paired.confidence_sequence(np.array([]), 0.05) is None
    result = paired.paired_comparison(none, none, 0.05)
    assert (result.n, result.accuracy_difference, result.mcnemar_p, result.interval) == (0, None, None, None)
    assert result.confidence_sequence is None


def test_the_stitched_boundarys_constants() -> None:
    """zeta(1.4) is scipy's; the floor the V_MIN comment relies on holds (twice the linear term, about 23)."""
    assert scipy.special.zeta(paired.STITCH_S) == pytest.approx(paired.ZETA_S, rel=1e-15)
    assert paired.stitched_boundary(np.logspace(-3, 12, 200), 0.05 / 2).min() > 23


def papers_boundary(v: float, alpha: float, v_min: float, s: float = 1.4, eta: float = 2.0, c: float = 2.0) -> float:
    """Howard et al. (2021), Theorem 1's polynomial stitched boundary, from the paper's symbols (v below m: u(m))."""
    v = max(v, v_min)
    ell = s * math.log(math.log(eta * v / v_min)) + math.log(scipy.special.zeta(s) / (alpha * math.log(eta) ** s))
    k1 = (eta**0.25 + eta**-0.25) / math.sqrt(2)
    k2 = (math.sqrt(eta) + 1) / 2
    return math.sqrt(k1**2 * v * ell + k2**2 * c**2 * ell**2) + c * k2 * ell


@pytest.mark.parametrize("alpha", [0.001, 0.025, 0.1, 0.45])
def test_stitched_boundary_is_the_papers_formula(alpha: float) -> None:
    """For X in [-1, 1] the scale is c = 2; the grid spans below V_MIN (flat there) to a billion."""
    v = np.concatenate([np.logspace(-2, 9, 300), [paired.V_MIN]])
    expected = [papers_boundary(value, alpha, v_min=paired.V_MIN) for value in v.tolist()]
    assert paired.stitched_boundary(v, alpha) == pytest.approx(expected, rel=1e-13)


def test_each_pair_keeps_the_empirical_bernstein_process_a_supermartingale() -> None:
    """The premise of Theorem 4, checked exactly over the three outcomes of a pair.

    For every distribution of X in {-1, 0, 1} (a grid), every prediction x^ in [-1, 1] and every lambda in [0, 1/2):
    E exp(lambda (X - mu) - psi_E(lambda) (X - x^)^2) <= 1 with psi_E the sub-exponential psi of scale c = 2; and
    psi_E <= psi_G (sub-gamma, the class the stitched boundary is proved for).
    """
    c = 2.0
    grid = np.linspace(0, 1, 41)
    up, down = np.meshgrid(grid, grid, indexing="ij")
    keep = up + down <= 1
    up, down = up[keep], down[keep]
    mu = up - down
    for lam in np.linspace(0, 0.499, 60):
        psi_e = (-math.log(1 - c * lam) - c * lam) / c**2
        assert psi_e <= lam**2 / (2 * (1 - c * lam)) + 1e-15
        for guess in np.linspace(-1, 1, 41):
            factor = {x: np.exp(lam * (x - mu) - psi_e * (x - guess) ** 2) for x in (-1.0, 0.0, 1.0)}
            expectation = up * factor[1.0] + down * factor[-1.0] + (1 - up - down) * factor[0.0]
            assert expectation.max() <= 1 + 1e-12


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.sampled_from([-1.0, 0.0, 1.0]), min_size=1, max_size=300),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_confidence_sequence_is_the_mean_plus_minus_the_boundary_of_its_variance_process(
    pairs: list[float], alpha: float
) -> None:
    """Recomputed by a loop: after pair t, mean_t +- u(V_t; alpha / 2) / t, V_t summing (X_i - mean_(i-1))^2."""
    low, high = paired.confidence_sequence_path(np.array(pairs), alpha)
    total = variance = 0.0
    for t, x in enumerate(pairs, start=1):
        variance += (x - (total / (t - 1) if t > 1 else 0.0)) ** 2
        total += x
        radius = papers_boundary(variance, alpha / 2, v_min=paired.V_MIN) / t
        assert low[t - 1] == pytest.approx(max(total / t - radius, -1), rel=1e-12, abs=1e-15)
        assert high[t - 1] == pytest.approx(min(total / t + radius, 1), rel=1e-12, abs=1e-15)
    assert paired.confidence_sequence(np.array(pairs), alpha) == pytest.approx((low[-1], high[-1]), rel=1e-12)


def ternary(rng: np.random.Generator, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Pairs' differences X: +1 (only batchnorm right) with probability up, -1 with probability down, else 0."""
    u = rng.random(up.shape)
    return np.where(u < up, 1.0, np.where(u < up + down, -1.0, 0.0))


def constant(discordant: float) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Equally accurate models disagreeing on a `discordant` share of passengers, half each way."""
    return lambda t: (np.full(t.shape, discordant / 2), np.full(t.shape, discordant / 2))


def variance_shift(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal models that agree on 98 % of the passengers at first, then disagree on every one."""
    half = np.where(t <= STEPS // 2, 0.01, 0.5)
    return half, half


def drifting(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The difference swings between +10 and -10 points (30 % discordant): the target is its running average."""
    mu = 0.1 * np.sin(2 * np.pi * t / 2000)
    return (0.3 + mu) / 2, (0.3 - mu) / 2


@pytest.mark.parametrize(
    "scenario",
    [constant(0.2), constant(1.0), constant(0.02), variance_shift, drifting],
    ids=["discordant-20%", "coin-flips", "discordant-2%", "variance-shift", "drifting"],
)
def test_confidence_sequence_covers_at_every_n_at_once(
    scenario: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> None:
    """At most alpha of the streams ever leave the sequence at any of their 5,000 steps (the time-uniform promise)."""
    alpha, rng = 0.05, np.random.default_rng(20)
    t = np.arange(1, STEPS + 1)
    up, down = scenario(t)
    target = np.cumsum(up - down) / t  # mu~_t: the mean of the pairs' expected differences so far
    ever = 0
    for _ in range(STREAMS // CHUNK):
        x = ternary(rng, np.broadcast_to(up, (CHUNK, STEPS)), np.broadcast_to(down, (CHUNK, STEPS)))
        low, high = paired.confidence_sequence_path(x, alpha)
        ever += int(((low > target) | (high < target)).any(axis=1).sum())
    assert ever / STREAMS <= alpha


def test_peeking_at_the_wald_interval_would_fail_the_same_check() -> None:
    """The check above can fail: the fixed-n interval, read at every step, leaves 0 in far more than 5 % of streams."""
    rng = np.random.default_rng(21)
    up = np.full((CHUNK, STEPS), 0.1)
    x = ternary(rng, up, up)
    t = np.arange(1, STEPS + 1)
    mean = np.cumsum(x, axis=1) / t
    half = scipy.stats.norm.ppf(0.975) * np.sqrt(np.maximum(np.cumsum(x**2, axis=1) / t - mean**2, 0) / t)
    assert (np.abs(mean) > half)[:, 30:].any(axis=1).mean() > 0.2


def test_confidence_sequence_finds_a_ten_point_difference() -> None:
    """batchnorm right on 15 % of passengers plain misses, plain on 5 %: 5,000 pairs exclude 0, 100 do not."""
    rng = np.random.default_rng(22)
    x = ternary(rng, np.full(5000, 0.15), np.full(5000, 0.05))
    low, high = paired.confidence_sequence_path(x, 0.05)
    assert low[-1] > 0
    assert low[99] < 0 < high[99]
    assert low[-1] < 0.1 < high[-1]


def test_it_is_narrower_than_the_sub_gaussian_normal_mixture_when_models_mostly_agree() -> None:
    """The module's reason for the empirical-Bernstein sequence, against the brief's first choice.

    Howard et al.'s two-sided normal mixture for 1-sub-Gaussian X (V_t = t), rho chosen for t_opt = 1,000 by the
    paper's rule: radius sqrt((t + rho) log((t + rho) / (rho alpha^2))) / t.
    """
    alpha, n = 0.05, 5000
    x = ternary(np.random.default_rng(23), np.full(n, 0.05), np.full(n, 0.05))
    rho = 1000 / (2 * math.log(1 / alpha) + math.log(1 + 2 * math.log(1 / alpha)))
    mixture = math.sqrt((n + rho) * math.log((n + rho) / (rho * alpha**2))) / n
    sequence = paired.confidence_sequence(x, alpha)
    assert sequence is not None
    assert (sequence[1] - sequence[0]) / 2 < 0.6 * mixture
