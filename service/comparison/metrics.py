"""One model's scores on labelled predictions: accuracy, log-loss, Brier, and calibration on equal-mass bins.

Equal-mass bins (quantiles of the predicted probabilities) rather than equal-width ones: a confident model puts
most passengers near 0 and 1, and fixed-width bins in between would hold a handful of rows each. A bin is an
interval of probabilities, so tied probabilities always share a bin (a bin may then hold more than its share)
and a new probability has exactly one bin: the estimate (service/comparison/estimate.py) maps unlabelled
predictions through the very bins the reliability diagram shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from service.comparison.schemas import ModelScores, ReliabilityBin
from survival.features import FloatArray
from survival.served import DECISION_THRESHOLD

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

# Bins of the reliability diagram (and of the calibration the estimate uses); fewer when there are fewer rows.
RELIABILITY_BINS: Final[int] = 10
# Log-loss clips probabilities to [eps, 1 - eps] as sklearn did: a confident miss costs about 34.5 nats, not infinity.
LOG_LOSS_EPS: Final[float] = 1e-15


def predicts_survival(probability: FloatArray) -> BoolArray:
    """A model's answer: survived when its probability is at least the served decision threshold."""
    return probability >= DECISION_THRESHOLD


@dataclass(frozen=True)
class Reliability:
    """Equal-mass bins of labelled probabilities: bin k holds (upper[k - 1], upper[k]], the last one all above."""

    upper: FloatArray  # the interior upper edges, increasing; every bin holds at least one of the fitted rows
    n: IntArray
    mean_probability: FloatArray
    observed_rate: FloatArray

    def bin_of(self, probability: FloatArray) -> IntArray:
        """The bin of each probability (any value in [0, 1], fitted or new)."""
        return np.searchsorted(self.upper, probability, side="left")

    def ece(self) -> float:
        """Expected calibration error: the bins' |observed - predicted|, weighted by their share of the rows."""
        return float((self.n * np.abs(self.observed_rate - self.mean_probability)).sum() / self.n.sum())

    def bins(self) -> list[ReliabilityBin]:
        """The diagram's bins, lowest probabilities first."""
        rows = zip(self.n.tolist(), self.mean_probability.tolist(), self.observed_rate.tolist(), strict=True)
        return [ReliabilityBin(n=n, mean_probability=p, observed_rate=o) for n, p, o in rows]


def equal_mass_edges(probability: FloatArray, bins: int = RELIABILITY_BINS) -> FloatArray:
    """Interior upper edges of min(bins, n) bins of (nearly) equal counts, merged where ties straddle an edge."""
    ordered = np.sort(probability)
    count = min(bins, ordered.size)
    # np.array_split's sizes: the first n % count bins hold one row more; each ends at its last row's value.
    sizes = np.full(count, ordered.size // count)
    sizes[: ordered.size % count] += 1
    upper: FloatArray = np.unique(ordered[np.cumsum(sizes)[:-1] - 1])
    # An edge at the maximum would leave the last bin empty: that bin's rows already sit in the one below.
    return upper[upper < float(ordered[-1])]


def reliability(probability: FloatArray, survived: BoolArray, bins: int = RELIABILITY_BINS) -> Reliability | None:
    """The reliability table of labelled probabilities; None without rows."""
    return _fit(probability, survived, bins) if probability.size else None


def _fit(probability: FloatArray, survived: BoolArray, bins: int = RELIABILITY_BINS) -> Reliability:
    upper = equal_mass_edges(probability, bins)
    index = np.searchsorted(upper, probability, side="left")
    n = np.bincount(index, minlength=upper.size + 1)
    total = np.bincount(index, weights=probability, minlength=upper.size + 1)
    positive = np.bincount(index, weights=survived, minlength=upper.size + 1)
    return Reliability(upper=upper, n=n, mean_probability=total / n, observed_rate=positive / n)


def log_loss(probability: FloatArray, survived: BoolArray) -> float:
    """Mean negative log-likelihood of the outcomes, probabilities clipped away from 0 and 1."""
    clipped = np.clip(probability, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.where(survived, np.log(clipped), np.log1p(-clipped)).mean())


def model_scores(probability: FloatArray, survived: BoolArray, table: Reliability | None = None) -> ModelScores:
    """One model's scores on labelled rows, all null without any (table: their reliability(), if already known)."""
    if probability.size == 0:
        return ModelScores(n=0, accuracy=None, log_loss=None, brier=None, ece=None, reliability=[])
    if table is None:
        table = _fit(probability, survived)
    return ModelScores(
        n=int(probability.size),
        accuracy=float((predicts_survival(probability) == survived).mean()),
        log_loss=log_loss(probability, survived),
        brier=float(((probability - survived) ** 2).mean()),
        ece=table.ece(),
        reliability=table.bins(),
    )
