"""The drift tests' null distributions (service/monitoring/distributions.py) against scipy.stats.

The service computes them without scipy (its import costs a worker about 64 MiB); scipy, installed with the
trainer, is the independent computation here: the exact two-sample KS p-value on drawn samples of every shape
(ties, equal sizes, one value, far apart), its asymptotic regime, the chi-square and normal tails.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.monitoring import distributions

REL = 1e-9  # the exact KS p-value, summed from positive terms, keeps ~13 digits even far in the tail


def samples(max_size: int) -> st.SearchStrategy[np.ndarray]:
    """Samples of 1..max_size values; small integers make ties, a shift far apart samples."""
    values = st.one_of(
        st.integers(-5, 5).map(float), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
    )
    return st.lists(values, min_size=1, max_size=max_size).map(np.array)


@settings(max_examples=300, deadline=None)
@given(a=samples(60), b=samples(60), shift=st.sampled_from([0.0, 0.5, 3.0, 1e7]))
def test_ks_2samp_equals_scipys_exact_p_value(a: np.ndarray, b: np.ndarray, shift: float) -> None:
    d, p = distributions.ks_2samp(a, b + shift)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = scipy.stats.ks_2samp(a, b + shift, method="exact")
    # scipy's exact sum can round outside [0, 1] (then it falls back to the asymptotic p): the enumeration
    # below covers those sizes.
    assume(not caught)
    assert d == pytest.approx(expected.statistic, abs=1e-15)
    assert p == pytest.approx(expected.pvalue, rel=REL, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 6), (2, 5), (4, 4), (5, 5), (3, 7), (6, 6)])
def test_ks_sf_exact_equals_an_enumeration_of_every_arrangement(n1: int, n2: int) -> None:
    """Under the null every placement of the first sample among the n1 + n2 ranks is equally likely."""
    scaled = []
    for placed in itertools.combinations(range(n1 + n2), n1):
        first = np.isin(np.arange(n1 + n2), placed)
        scaled.append(int(np.abs(n2 * np.cumsum(first) - n1 * np.cumsum(~first)).max()))
    counts = np.array(scaled)
    for value in sorted(set(scaled)):
        expected = (counts >= value).mean()
        assert distributions.ks_sf_exact(value, n1, n2) == pytest.approx(expected, rel=1e-12), value


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [(1000, 712, 0.0), (1000, 712, 0.2), (1000, 712, 2.0), (712, 1000, 0.05), (500, 500, 0.1), (1, 10_000, 0.0)],
)
def test_ks_2samp_equals_scipy_at_the_services_sizes(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.lognormal(size=n2) - 1 + shift
    d, p = distributions.ks_2samp(a, b)
    expected = scipy.stats.ks_2samp(a, b)  # scipy's "auto": exact here, as the service
    assert d == pytest.approx(expected.statistic, abs=1e-15)
    assert p == pytest.approx(expected.pvalue, rel=REL, abs=1e-300)


def test_beyond_the_exact_limit_the_p_value_is_kolmogorovs_limit_distribution() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=distributions.EXACT_MAX_N + 1), rng.normal(0.02, size=712)
    d, p = distributions.ks_2samp(a, b)
    en = a.size * b.size / (a.size + b.size)
    assert p == pytest.approx(scipy.stats.kstwobign.sf(math.sqrt(en) * d), rel=1e-12)
    assert 0 < p < 1


@pytest.mark.parametrize("x", [0.0, 0.1, 0.21, 0.5, 1.0, 1.36, 2.0, 4.0])
def test_kolmogorov_sf_equals_scipys_kstwobign(x: float) -> None:
    assert distributions.kolmogorov_sf(x) == pytest.approx(scipy.stats.kstwobign.sf(x), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("df", range(1, 9))
@pytest.mark.parametrize("x", [0.0, 1e-3, 0.5, 2.0, 7.8, 30.0, 300.0, 1400.0])
def test_chi2_sf_equals_scipys(df: int, x: float) -> None:
    assert distributions.chi2_sf(x, df) == pytest.approx(scipy.stats.chi2.sf(x, df), rel=1e-12, abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(table=st.lists(st.lists(st.integers(1, 10_000), min_size=3, max_size=3), min_size=2, max_size=2).map(np.array))
def test_chi2_contingency_equals_scipys_uncorrected(table: np.ndarray) -> None:
    statistic, p = distributions.chi2_contingency(table)
    expected = scipy.stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("z", [0.0, 0.3, 1.96, -2.5, 8.0, 30.0])
def test_normal_two_sided_tail_equals_scipys(z: float) -> None:
    # Far in the tail the rounding of z / sqrt(2) is amplified z**2 times (1e-13 at z = 30).
    assert distributions.normal_two_sided(z) == pytest.approx(2 * scipy.stats.norm.sf(abs(z)), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("p", [0.5, 0.025, 1e-4, 3.1e-6, 1e-12])
def test_normal_isf_equals_scipys(p: float) -> None:
    assert distributions.normal_isf(p) == pytest.approx(scipy.stats.norm.isf(p), rel=1e-12)
