"""The drift tests (their null distributions in service/monitoring/distributions.py, checked against scipy).

Each feature's test compares the window with the training split as two samples (both are samples of their
populations; the training split is only 712 rows): Kolmogorov-Smirnov for Fare and Age (known values only),
chi-square on the 2 x 3 table of Pclass counts, a two-proportion z-test for the missing-age rate. Each
hidden unit's test is a z-test of the window's mean pre-activation against the training split's exact mean
and variance (n iid passengers: the mean's standard error is sd / sqrt(n)).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from service.monitoring import distributions
from service.monitoring.schemas import Distribution, FeatureDrift, LayerDrift
from service.monitoring.summaries import QUANTILE_LABELS, quantiles
from survival.features import FloatArray
from survival.reference import NumericReference

# A unit whose training pre-activations vary less than this (relative) is constant: it has no z.
CONSTANT_RTOL: Final[float] = 1e-12


def ks_test(
    feature: str,
    window: FloatArray,
    reference: NumericReference,
    threshold: float,
    min_size: int,
    reference_quantiles: list[float] | None = None,
) -> FeatureDrift:
    """Two-sample Kolmogorov-Smirnov of the window's known values (NaN dropped) against the training split's."""
    known = window[~np.isnan(window)]
    statistic = p_value = None
    if known.size >= min_size:
        statistic, p_value = distributions.ks_2samp(known, np.asarray(reference.values))
    return _feature(
        feature,
        "ks_2samp",
        statistic,
        p_value,
        threshold,
        int(known.size),
        reference.n_known,
        Distribution(
            kind="quantiles",
            labels=QUANTILE_LABELS,
            reference=reference_quantiles or quantiles(np.asarray(reference.values)) or [],
            window=quantiles(known),
        ),
    )


def chi2_test(window: FloatArray, counts: dict[str, int], threshold: float, min_size: int) -> FeatureDrift:
    """Chi-square test of homogeneity on the 2 x k table (window, training) of the category counts."""
    labels = list(counts)
    live = np.array([(window == float(label)).sum() for label in labels])
    ref = np.array([counts[label] for label in labels])
    statistic = p_value = None
    if window.size >= min_size:
        table = np.vstack([live, ref])
        table = table[:, table.sum(axis=0) > 0]  # a class absent from both samples carries no information
        if table.shape[1] < 2:
            statistic, p_value = 0.0, 1.0
        else:
            # No Yates correction: with two classes left it would no longer be the same test as with three.
            statistic, p_value = distributions.chi2_contingency(table)
    fractions = (live / live.sum()).tolist() if live.sum() else None
    return _feature(
        "pclass",
        "chi2_contingency",
        statistic,
        p_value,
        threshold,
        int(window.size),
        int(ref.sum()),
        Distribution(kind="fractions", labels=labels, reference=(ref / ref.sum()).tolist(), window=fractions),
    )


def missing_rate_test(window: FloatArray, reference: NumericReference, threshold: float, min_size: int) -> FeatureDrift:
    """Two-sided two-proportion z-test (pooled) of the window's missing-value rate against the training split's."""
    n1, x1 = int(window.size), int(np.isnan(window).sum())
    n2, x2 = reference.n_known + reference.n_missing, reference.n_missing
    statistic = p_value = None
    if n1 >= min_size:
        pooled = (x1 + x2) / (n1 + n2)
        spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        # Nothing missing anywhere (or everything): the two rates are equal, there is no evidence of a change.
        statistic = (x1 / n1 - x2 / n2) / spread if spread > 0 else 0.0
        p_value = distributions.normal_two_sided(statistic)
    return _feature(
        "age_missing",
        "two_proportion_z",
        statistic,
        p_value,
        threshold,
        n1,
        n2,
        Distribution(kind="fractions", labels=["missing"], reference=[x2 / n2], window=[x1 / n1] if n1 else None),
    )


def _feature(
    feature: str,
    test: str,
    statistic: float | None,
    p_value: float | None,
    threshold: float,
    n_window: int,
    n_reference: int,
    distribution: Distribution,
) -> FeatureDrift:
    return FeatureDrift.model_validate(
        {
            "feature": feature,
            "test": test,
            "statistic": statistic,
            "p_value": p_value,
            "threshold": threshold,
            "drift": None if p_value is None else p_value < threshold,
            "n_window": n_window,
            "n_reference": n_reference,
            "distribution": distribution,
        }
    )


def z_threshold(level: float, units: int) -> float:
    """|z| above which one of `units` units is out of bounds, Bonferroni at family level `level` (two-sided)."""
    return distributions.normal_isf(level / max(units, 1) / 2)


def unit_z(pre: FloatArray, expected: FloatArray, sd: FloatArray) -> list[float | None]:
    """Per unit: (window mean - expected) / (sd / sqrt(n)); None for a unit constant on the training split."""
    n = pre.shape[0]
    testable = sd > CONSTANT_RTOL * np.maximum(1.0, np.abs(expected))
    z = (pre.mean(axis=0) - expected) / np.where(testable, sd, 1.0) * math.sqrt(n)
    return [float(v) if ok else None for v, ok in zip(z.tolist(), testable.tolist(), strict=True)]


def layer_test(
    model: str, layer: str, pre: FloatArray, expected: FloatArray, sd: FloatArray, level: float, min_size: int
) -> LayerDrift:
    """One layer: each unit's z, Bonferroni over its testable units at family level `level`."""
    units = int(expected.shape[0])
    testable = int((sd > CONSTANT_RTOL * np.maximum(1.0, np.abs(expected))).sum())
    bound = z_threshold(level, testable)
    enough = pre.shape[0] >= min_size
    z = unit_z(pre, expected, sd) if enough else [None] * units
    tested = [v for v in z if v is not None]
    out = sum(abs(v) > bound for v in tested) if enough else None
    return LayerDrift(
        model=model,
        layer=layer,
        units=units,
        largest_z=max(tested, key=abs) if tested else None,
        z_threshold=bound,
        units_out_of_bounds=out,
        drift=None if out is None else out > 0,
        z=z,
    )
