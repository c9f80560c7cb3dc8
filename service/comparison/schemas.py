"""GET /comparison's response model: each model's scores, the paired test and sequence, the estimate and the verdict."""

from __future__ import annotations

from pydantic import BaseModel, Field

from survival.variants import VariantName


class ReliabilityBin(BaseModel):
    """One equal-mass bin of a reliability diagram: predictions of similar probability and how often they came true."""

    n: int = Field(ge=1, description="Labelled predictions in the bin.")
    mean_probability: float = Field(description="Mean predicted probability of survival in the bin.")
    observed_rate: float = Field(description="Fraction of the bin's passengers who survived.")


class ModelScores(BaseModel):
    """One model on labelled predictions; every score is null while there is none."""

    n: int = Field(ge=0, description="Labelled predictions scored.")
    accuracy: float | None = Field(description="Fraction predicted right (survived when probability >= threshold).")
    log_loss: float | None = Field(
        description="Mean negative log-likelihood, probabilities clipped to [1e-15, 1-1e-15]."
    )
    brier: float | None = Field(description="Mean squared difference between probability and outcome.")
    ece: float | None = Field(
        description="Expected calibration error: sum over the reliability bins of n_bin / n * |observed - predicted|."
    )
    reliability: list[ReliabilityBin] = Field(description="Equal-mass bins by probability, lowest first.")


class PairedComparison(BaseModel):
    """Both models on the same labelled predictions: who was right, and what that shows about the difference."""

    n: int = Field(ge=0, description="Labelled pairs (one passenger answered by both models).")
    both_right: int = Field(ge=0, description="Pairs both models predicted right.")
    both_wrong: int = Field(ge=0, description="Pairs both models predicted wrong.")
    only_batchnorm_right: int = Field(ge=0, description="Discordant pairs only batchnorm predicted right.")
    only_plain_right: int = Field(ge=0, description="Discordant pairs only plain predicted right.")
    accuracy_difference: float | None = Field(
        description="accuracy(batchnorm) - accuracy(plain) = (only_batchnorm_right - only_plain_right) / n."
    )
    mcnemar_p: float | None = Field(
        description="Exact two-sided McNemar p-value (binomial test of the discordant pairs); 1 when there are none."
    )
    interval: tuple[float, float] | None = Field(
        description="Fixed-n Wald interval (1 - alpha) for the accuracy difference: valid only if n was fixed in "
        "advance, not for a decision taken whenever the report is looked at."
    )
    confidence_sequence: tuple[float, float] | None = Field(
        description="Anytime-valid (1 - alpha) confidence sequence for the accuracy difference (empirical Bernstein, "
        "Howard et al. 2021): it may be read after every new outcome, and stopping when it excludes 0 is sound."
    )


class RecentComparison(BaseModel):
    """The same scores and paired comparison over the most recent `window` labelled pairs only.

    A sliding window is another stream at every read, so its confidence sequence is not anytime-valid across reads;
    the verdict never uses it.
    """

    n: int = Field(ge=0, description="Labelled pairs in the recent window (at most `window`).")
    models: dict[VariantName, ModelScores] = Field(description="Each model over the recent labelled pairs.")
    paired: PairedComparison = Field(description="The two models over the recent labelled pairs.")


class EstimatedAccuracy(BaseModel):
    """Confidence-based performance estimation (CBPE): the expected accuracy on predictions without outcomes yet."""

    n_unlabelled: int = Field(ge=0, description="Recent predictions without an outcome that the estimate covers.")
    expected_accuracy: float | None = Field(
        description="Mean over those predictions of the calibrated probability that the model's answer is right; "
        "null when there are none."
    )
    calibrated_on: int = Field(
        ge=0,
        description="Labelled predictions the probabilities were calibrated on (histogram binning); 0: too few, "
        "the model's raw probabilities were taken as they are.",
    )
    realised_accuracy: float | None = Field(
        description="The model's accuracy on the most recent `window` labelled predictions, for comparison."
    )


class ComparisonReport(BaseModel):
    """Is one served model more accurate than the other on live traffic whose outcomes came back?"""

    n_predictions: int = Field(ge=0, description="Every stored prediction, labelled or not.")
    n_labelled: int = Field(ge=0, description="Stored predictions with an outcome.")
    window: int = Field(ge=1, description="Size of the recent window (labelled pairs, unlabelled predictions).")
    alpha: float = Field(gt=0, lt=1, description="Error level of the interval, the sequence and the verdict.")
    models: dict[VariantName, ModelScores] = Field(description="Each model over every labelled prediction.")
    paired: PairedComparison = Field(description="The two models over every labelled prediction.")
    recent: RecentComparison = Field(description="The same over the most recent `window` labelled pairs.")
    estimated: dict[VariantName, EstimatedAccuracy] = Field(
        description="Each model's expected accuracy on the most recent `window` predictions without an outcome."
    )
    more_accurate: VariantName | None = Field(
        description="The model the confidence sequence shows more accurate; null while it does not."
    )
    verdict: str = Field(
        description="One sentence worded from the confidence sequence, claiming no more than it shows."
    )
