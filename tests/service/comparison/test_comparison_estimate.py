"""The CBPE estimate (service/comparison/estimate.py) against the accuracy realised on simulated outcomes.

The unlabelled passengers' outcomes are drawn too, and hidden from the estimate: its expected accuracy must land
near the accuracy those outcomes realise, for a calibrated model as it is and for a miscalibrated one once its
probabilities are recalibrated on the labelled rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from service.comparison import estimate, metrics

LABELLED, UNLABELLED = 20_000, 50_000
# The realised accuracy of 50,000 passengers has a standard error under 0.002; the binning adds a little bias.
TOLERANCE = 0.01


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def overconfident(q: np.ndarray) -> np.ndarray:
    """Probabilities pushed towards 0 and 1 (the true logit times 3): the right ranking, a bad calibration."""
    return sigmoid(3 * np.log(q / (1 - q)))


def realised(p: np.ndarray, survived: np.ndarray) -> float:
    return float(((p >= 0.5) == survived).mean())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_expected_accuracy_of_a_calibrated_model_matches_the_realised_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.beta(2, 2, size=LABELLED + UNLABELLED)
    y = rng.uniform(size=q.size) < q  # the model's probability is the true one
    table = metrics.reliability(q[:LABELLED], y[:LABELLED])
    result = estimate.estimate(q[LABELLED:], table, realised_accuracy=None)
    assert result.calibrated_on == LABELLED
    assert result.n_unlabelled == UNLABELLED
    assert result.expected_accuracy == pytest.approx(realised(q[LABELLED:], y[LABELLED:]), abs=TOLERANCE)
    # Calibrated already: the raw probabilities give the same answer.
    raw = estimate.expected_accuracy(q[LABELLED:], None)
    assert raw == pytest.approx(realised(q[LABELLED:], y[LABELLED:]), abs=TOLERANCE)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_recalibration_corrects_a_miscalibrated_model(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.01, 0.99, size=LABELLED + UNLABELLED)
    y = rng.uniform(size=q.size) < q
    p = overconfident(q)
    truth = realised(p[LABELLED:], y[LABELLED:])
    raw = estimate.expected_accuracy(p[LABELLED:], None)
    assert raw is not None
    assert raw - truth > 0.1  # taken at its word, the overconfident model promises far more than it delivers
    result = estimate.estimate(p[LABELLED:], metrics.reliability(p[:LABELLED], y[:LABELLED]), None)
    assert result.calibrated_on == LABELLED
    assert result.expected_accuracy == pytest.approx(truth, abs=TOLERANCE)


def test_few_labelled_rows_leave_the_raw_probabilities() -> None:
    rng = np.random.default_rng(7)
    p = overconfident(rng.uniform(0.01, 0.99, size=estimate.CALIBRATION_MIN_ROWS - 1))
    y = rng.uniform(size=p.size) < 0.5
    unlabelled = rng.uniform(size=300)
    result = estimate.estimate(unlabelled, metrics.reliability(p, y), realised_accuracy=0.5)
    assert result.calibrated_on == 0
    by_hand = np.mean([v if v >= 0.5 else 1 - v for v in unlabelled.tolist()])
    assert result.expected_accuracy == pytest.approx(by_hand, rel=1e-12)
    assert result.realised_accuracy == 0.5


def test_calibration_maps_each_probability_to_its_bins_observed_rate() -> None:
    """Checked row by row against the reliability bins: the first bin whose upper edge is not below the value."""
    rng = np.random.default_rng(8)
    p = rng.uniform(size=500)
    y = rng.uniform(size=500) < p
    table = metrics.reliability(p, y)
    assert table is not None
    new = np.concatenate([rng.uniform(size=200), [0.0, 1.0], table.upper])
    mapped = estimate.calibrated(new, table)
    edges = table.upper.tolist()

    def bin_by_hand(value: float) -> int:
        return next((i for i, edge in enumerate(edges) if value <= edge), len(edges))

    labelled_bins = [bin_by_hand(v) for v in p.tolist()]
    for value, got in zip(new.tolist(), mapped.tolist(), strict=True):
        members = [o for k, o in zip(labelled_bins, y.tolist(), strict=True) if k == bin_by_hand(value)]
        assert got == pytest.approx(sum(members) / len(members), rel=1e-12)


def test_no_unlabelled_predictions_estimate_null() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(size=1000)
    result = estimate.estimate(np.array([]), metrics.reliability(p, p > 0.5), realised_accuracy=1.0)
    assert result.model_dump() == {
        "n_unlabelled": 0,
        "expected_accuracy": None,
        "calibrated_on": 1000,
        "realised_accuracy": 1.0,
    }
    assert estimate.estimate(np.array([]), None, None).calibrated_on == 0
