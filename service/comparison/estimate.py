"""Expected accuracy on predictions whose outcomes are not known yet: confidence-based performance estimation.

NannyML's CBPE: if a model's probabilities are calibrated, a passenger it predicts to survive with probability
p is right with probability p (and one it predicts to die, with 1 - p), so the mean of those is the accuracy to
expect. Served probabilities need not be calibrated on live traffic, so they are first recalibrated on the
labelled predictions by histogram binning (Zadrozny & Elkan 2001) over the reliability diagram's own bins: a
probability in bin k becomes bin k's observed survival rate. The estimate is only as good as the assumption
that the unlabelled traffic resembles the labelled one given the probability (no concept shift).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from service.comparison.metrics import Reliability, predicts_survival
from service.comparison.schemas import EstimatedAccuracy
from survival.features import FloatArray

# Fewer labelled rows than this leave 10 bins of under 10 rows each, whose observed rates (steps of 0.1 or worse)
# are noisier than the model's own probabilities: below it the raw probabilities are used.
CALIBRATION_MIN_ROWS: Final[int] = 100


def calibrated(probability: FloatArray, table: Reliability | None) -> FloatArray:
    """Each probability mapped to its bin's observed survival rate; unchanged without a table."""
    if table is None:
        return probability
    return table.observed_rate[table.bin_of(probability)]


def expected_accuracy(probability: FloatArray, table: Reliability | None) -> float | None:
    """Mean chance that the model's answer is right, from (calibrated) probabilities; None without rows."""
    if probability.size == 0:
        return None
    chance = calibrated(probability, table)
    return float(np.where(predicts_survival(probability), chance, 1 - chance).mean())


def estimate(unlabelled: FloatArray, table: Reliability | None, realised_accuracy: float | None) -> EstimatedAccuracy:
    """One model's CBPE estimate on the unlabelled window, next to its realised accuracy on the recent labelled one.

    table: the reliability of the model's labelled probabilities (None without any); it calibrates only when it
    was fitted on at least CALIBRATION_MIN_ROWS rows.
    """
    calibrated_on = int(table.n.sum()) if table is not None else 0
    if calibrated_on < CALIBRATION_MIN_ROWS:
        table, calibrated_on = None, 0
    return EstimatedAccuracy(
        n_unlabelled=int(unlabelled.size),
        expected_accuracy=expected_accuracy(unlabelled, table),
        calibrated_on=calibrated_on,
        realised_accuracy=realised_accuracy,
    )
