"""The comparison report: recorded pairs of predictions (and the outcomes fed back) in, GET /comparison's body out.

Pure: arrays in, a ComparisonReport out; the prediction store reads the arrays and the route serves the report.
The verdict is worded from the anytime-valid confidence sequence alone (the report may be read after every new
outcome); McNemar's p-value is quoted beside it as supporting information, never as the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.comparison.estimate import estimate
from service.comparison.metrics import model_scores, predicts_survival, reliability
from service.comparison.paired import paired_comparison
from service.comparison.schemas import ComparisonReport, PairedComparison, RecentComparison
from survival.features import FloatArray
from survival.variants import VARIANTS, VariantName

OutcomeArray = npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]


def _check_probabilities(p_batchnorm: FloatArray, p_plain: FloatArray) -> None:
    if p_batchnorm.ndim != 1 or p_batchnorm.shape != p_plain.shape:
        raise ValueError(f"p_batchnorm {p_batchnorm.shape} and p_plain {p_plain.shape}: two aligned 1-D arrays")
    for name, p in (("p_batchnorm", p_batchnorm), ("p_plain", p_plain)):
        if not ((p >= 0) & (p <= 1)).all():  # NaN fails both comparisons
            raise ValueError(f"{name} holds values outside [0, 1] (or NaN)")


@dataclass(frozen=True)
class LabelledPairs:
    """Predictions whose outcome came back, oldest first: both models' probabilities and whether each survived."""

    p_batchnorm: FloatArray
    p_plain: FloatArray
    survived: OutcomeArray  # 0/1 or bool

    def __post_init__(self) -> None:
        _check_probabilities(self.p_batchnorm, self.p_plain)
        if self.survived.shape != self.p_batchnorm.shape:
            raise ValueError(f"survived {self.survived.shape} is not aligned with the probabilities")
        if self.survived.dtype != np.bool_ and not ((self.survived == 0) | (self.survived == 1)).all():
            raise ValueError("survived holds values other than 0 and 1")

    def probability(self, name: VariantName) -> FloatArray:
        """One model's probabilities."""
        return self.p_batchnorm if name == "batchnorm" else self.p_plain


@dataclass(frozen=True)
class UnlabelledPairs:
    """The most recent predictions without an outcome yet (a window): both models' probabilities."""

    p_batchnorm: FloatArray
    p_plain: FloatArray

    def __post_init__(self) -> None:
        _check_probabilities(self.p_batchnorm, self.p_plain)

    def probability(self, name: VariantName) -> FloatArray:
        """One model's probabilities."""
        return self.p_batchnorm if name == "batchnorm" else self.p_plain


def _points(difference: float) -> str:
    """A difference in accuracy as signed percentage points, with a second digit where the first shows nothing."""
    points = 100 * difference
    return f"{points:+.1f}" if points == 0 or abs(points) >= 0.1 else f"{points:+.2g}"


def verdict(paired: PairedComparison, alpha: float) -> tuple[VariantName | None, str]:
    """The model the confidence sequence shows more accurate (None if it shows neither) and the sentence saying so."""
    if paired.confidence_sequence is None or paired.mcnemar_p is None:
        return None, "No outcomes yet: the models cannot be compared until outcomes of served predictions come back."
    low, high = paired.confidence_sequence
    sequence = f"the anytime-valid {100 * (1 - alpha):g} % confidence sequence for the difference in accuracy"
    support = (
        f"n = {paired.n:,} pairs, {paired.only_batchnorm_right:,} right only by batchnorm and "
        f"{paired.only_plain_right:,} only by plain; McNemar exact p = {paired.mcnemar_p:.2g}"
    )
    if low > 0:
        return "batchnorm", (
            f"batchnorm is more accurate than plain on the labelled traffic: {sequence} (batchnorm - plain) is "
            f"[{_points(low)}, {_points(high)}] points ({support})."
        )
    if high < 0:
        return "plain", (
            f"plain is more accurate than batchnorm on the labelled traffic: {sequence} (plain - batchnorm) is "
            f"[{_points(-high)}, {_points(-low)}] points ({support})."
        )
    return None, (
        f"Not shown: {sequence} (batchnorm - plain), [{_points(low)}, {_points(high)}] points, includes 0; the data "
        f"so far cannot tell the models apart (this is not evidence that they are equal; {support})."
    )


def comparison_report(
    labelled: LabelledPairs, unlabelled: UnlabelledPairs, n_predictions: int, window: int, alpha: float = 0.05
) -> ComparisonReport:
    """Both models over every labelled pair and over the recent window, the estimates for the unlabelled window."""
    if window < 1 or not 0 < alpha < 1:
        raise ValueError(f"window must be >= 1 and alpha in (0, 1), not {window} and {alpha}")
    survived = labelled.survived.astype(np.bool_)
    recent = slice(max(survived.size - window, 0), None)
    models, recent_models, estimated, right = {}, {}, {}, {}
    for name in VARIANTS:
        p = labelled.probability(name)
        table = reliability(p, survived)  # once: the diagram and the estimate's calibration share it
        models[name] = model_scores(p, survived, table)
        recent_models[name] = model_scores(p[recent], survived[recent])
        estimated[name] = estimate(unlabelled.probability(name), table, recent_models[name].accuracy)
        right[name] = predicts_survival(p) == survived
    paired = paired_comparison(right["batchnorm"], right["plain"], alpha)
    recent_paired = paired_comparison(right["batchnorm"][recent], right["plain"][recent], alpha)
    more_accurate, sentence = verdict(paired, alpha)
    return ComparisonReport(
        n_predictions=n_predictions,
        n_labelled=int(survived.size),
        window=window,
        alpha=alpha,
        models=models,
        paired=paired,
        recent=RecentComparison(n=recent_paired.n, models=recent_models, paired=recent_paired),
        estimated=estimated,
        more_accurate=more_accurate,
        verdict=sentence,
    )
