"""One model's scores (service/comparison/metrics.py) against sklearn.metrics and a row-by-row loop.

Accuracy, log-loss and Brier are sklearn's; the equal-mass reliability bins and the ECE are recomputed here by a
plain loop over the sorted probabilities and then over the rows, on drawn samples with and without ties.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

from service.comparison import metrics
from survival.served import DECISION_THRESHOLD

KINDS = ["continuous", "ties", "extremes"]


def draw(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n probabilities and outcomes: continuous, on a coarse grid (ties, the threshold itself), or mostly 0 and 1."""
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        p = rng.uniform(size=n)
    elif kind == "ties":
        p = rng.choice(np.array([0.1, 0.25, DECISION_THRESHOLD, 0.5, 0.75, 0.9]), size=n)
    else:
        p = rng.choice(np.array([0.0, 1.0, 0.3, 0.999]), size=n)
    return p, rng.uniform(size=n) < np.clip(p, 0.05, 0.95)


def loop_reliability(p: list[float], y: list[bool], bins: int) -> list[tuple[int, float, float]]:
    """The equal-mass bins by hand: cut the sorted values into array_split's sizes, then file each row by value."""
    ordered = sorted(p)
    n, count = len(ordered), min(bins, len(ordered))
    edges: list[float] = []
    end = 0
    for k in range(count - 1):
        end += n // count + (1 if k < n % count else 0)
        value = ordered[end - 1]  # the last value of the k-th chunk closes the bin
        if value not in edges and value < ordered[-1]:
            edges.append(value)
    groups: list[list[tuple[float, bool]]] = [[] for _ in range(len(edges) + 1)]
    for value, outcome in zip(p, y, strict=True):
        k = 0
        while k < len(edges) and value > edges[k]:
            k += 1
        groups[k].append((value, outcome))
    rows = []
    for group in groups:
        assert group, "every bin holds a row"
        rows.append((len(group), sum(v for v, _ in group) / len(group), sum(1.0 for _, o in group if o) / len(group)))
    return rows


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), n=st.integers(1, 400), seed=st.integers(0, 2**32 - 1))
def test_model_scores_equal_sklearn_and_a_loop(kind: str, n: int, seed: int) -> None:
    p, y = draw(kind, n, seed)
    table = metrics.reliability(p, y)
    scores = metrics.model_scores(p, y, table)
    assert scores.n == n
    assert scores.accuracy == pytest.approx(accuracy_score(y, p >= 0.5), abs=1e-15)
    assert scores.brier == pytest.approx(brier_score_loss(y, p, labels=[0, 1]), rel=1e-12, abs=1e-15)
    clipped = [min(max(v, 1e-15), 1 - 1e-15) for v in p.tolist()]
    by_hand = -sum(math.log(c if o else 1 - c) for c, o in zip(clipped, y.tolist(), strict=True)) / n
    assert scores.log_loss == pytest.approx(by_hand, rel=1e-3 if kind == "extremes" else 1e-12)
    if kind != "extremes":  # sklearn clips at the float epsilon instead: the same away from 0 and 1
        assert scores.log_loss == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-12)

    expected = loop_reliability(p.tolist(), y.tolist(), metrics.RELIABILITY_BINS)
    got = [(b.n, b.mean_probability, b.observed_rate) for b in scores.reliability]
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], rtol=1e-12, atol=1e-15)
    ece = sum(count / n * abs(rate - mean) for count, mean, rate in expected)
    assert scores.ece == pytest.approx(ece, rel=1e-12, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 500), seed=st.integers(0, 2**32 - 1))
def test_distinct_probabilities_fall_into_array_splits_chunks(n: int, seed: int) -> None:
    """Without ties the bins are exactly np.array_split of the sorted values: equal mass, contiguous."""
    p = np.random.default_rng(seed).permutation(np.linspace(0.001, 0.999, n))
    table = metrics.reliability(p, p > 0.5)
    assert table is not None
    chunks = np.array_split(np.sort(p), min(10, n))
    assert table.n.tolist() == [c.size for c in chunks]
    assert np.allclose(table.mean_probability, [c.mean() for c in chunks], rtol=1e-12)


def test_tied_probabilities_share_a_bin() -> None:
    """A value repeated across a chunk boundary is never split: the bin takes all of it, the next one less."""
    p = np.array([0.2] * 7 + [0.4] * 6 + [0.9] * 7)
    table = metrics.reliability(p, np.zeros(p.size, dtype=bool))
    assert table is not None
    assert table.n.tolist() == [7, 6, 7]
    assert table.bin_of(np.array([0.0, 0.2, 0.3, 0.4, 0.5, 1.0])).tolist() == [0, 0, 1, 1, 2, 2]


def test_one_row_and_one_class_are_scored() -> None:
    """n = 1 is one bin; all survived (or none) scores like any sample, with no NaN anywhere."""
    one = metrics.model_scores(np.array([0.7]), np.array([True]))
    assert (one.n, one.accuracy, len(one.reliability)) == (1, 1.0, 1)
    assert one.brier == pytest.approx(0.09)
    assert one.ece == pytest.approx(0.3)
    p = np.random.default_rng(3).uniform(size=50)
    for outcome in (True, False):
        y = np.full(50, outcome)
        scores = metrics.model_scores(p, y)
        assert scores.log_loss == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-12)
        assert all(b.observed_rate == float(outcome) for b in scores.reliability)


def test_a_probability_at_the_threshold_predicts_survival() -> None:
    p = np.array([DECISION_THRESHOLD, DECISION_THRESHOLD, np.nextafter(DECISION_THRESHOLD, 0)])
    assert metrics.predicts_survival(p).tolist() == [True, True, False]
    assert metrics.model_scores(p, np.array([True, False, False])).accuracy == pytest.approx(2 / 3)


def test_no_rows_scores_null() -> None:
    empty = np.array([], dtype=np.float64)
    assert metrics.reliability(empty, empty.astype(bool)) is None
    scores = metrics.model_scores(empty, empty.astype(bool))
    assert scores.model_dump() == {
        "n": 0,
        "accuracy": None,
        "log_loss": None,
        "brier": None,
        "ece": None,
        "reliability": [],
    }
