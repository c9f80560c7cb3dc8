"""The API contract: request and response models, with the documented bounds and examples."""

from __future__ import annotations

from typing import Any, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from survival.checkpoint import Baseline, Curves, DataInfo, Hyperparameters, ValidationMetrics
from survival.features import AGE_MAX, FARE_MAX, PCLASS_VALUES, Preprocessing
from survival.study import StudyReport
from survival.variants import ModelConfig, VariantName

# Kaggle columns a pasted train.csv/test.csv row may carry; accepted and ignored so such a row works.
# Any other unknown field is rejected: a typo like "agee" must not silently fall back to the median age.
IGNORED_KAGGLE_FIELDS: Final[frozenset[str]] = frozenset(
    {"PassengerId", "Survived", "Name", "Sex", "SibSp", "Parch", "Ticket", "Cabin", "Embarked"}
)


class Passenger(BaseModel):
    """One passenger. Kaggle's spellings Pclass, Fare and Age are accepted too, and its other columns ignored."""

    # strict: booleans and numeric strings are errors, not silently coerced numbers.
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"pclass": 3, "fare": 7.25, "age": 22}, {"pclass": 1, "fare": 71.28}]},
    )

    pclass: int = Field(
        validation_alias=AliasChoices("pclass", "Pclass"),
        description="Ticket class: 1, 2 or 3.",
        json_schema_extra={"enum": list(PCLASS_VALUES)},
    )
    fare: float = Field(
        validation_alias=AliasChoices("fare", "Fare"),
        ge=0,
        le=FARE_MAX,
        allow_inf_nan=False,
        description=f"Ticket fare in pounds, 0 to {FARE_MAX:g} (the highest on record is 512.33).",
    )
    age: float | None = Field(
        default=None,
        validation_alias=AliasChoices("age", "Age"),
        gt=0,
        le=AGE_MAX,
        allow_inf_nan=False,
        description=f"Age in years, in (0, {AGE_MAX:g}]; null or absent when unknown (the training median is used).",
    )

    @model_validator(mode="before")
    @classmethod
    def drop_ignored_kaggle_fields(cls, data: Any) -> Any:
        """Drop the Kaggle columns that the model does not use."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in IGNORED_KAGGLE_FIELDS}
        return data

    @field_validator("pclass")
    @classmethod
    def check_pclass(cls, value: int) -> int:
        """Pclass must be one of the three classes."""
        if value not in PCLASS_VALUES:
            raise ValueError("must be 1, 2 or 3")
        return value


class PassengerBatch(BaseModel):
    """Several passengers, answered in the same order."""

    model_config = ConfigDict(strict=True, extra="forbid")

    passengers: list[Passenger] = Field(min_length=1, description="At least one passenger; at most MAX_BATCH_SIZE.")


class ModelPrediction(BaseModel):
    """One model's answer for one passenger."""

    survival_probability: float = Field(ge=0, le=1, examples=[0.27])
    survived: bool = Field(description="survival_probability >= 0.5")


class ServedVersion(BaseModel):
    """Which checkpoint answered."""

    version: str = Field(description="First 12 hex digits of the weights file's sha256.")
    run_id: str


class PredictResponse(BaseModel):
    """Predictions in input order; each row holds the answer of every requested model."""

    predictions: list[dict[VariantName, ModelPrediction]]
    passenger_ids: list[str] | None = Field(default=None, description="Present when the input was CSV.")
    models: dict[VariantName, ServedVersion]


class ErrorItem(BaseModel):
    """One problem with the request."""

    field: str | None = Field(default=None, description="The field or CSV column at fault.")
    index: int | None = Field(default=None, description="0-based position in `passengers` (JSON batches).")
    row: int | None = Field(default=None, description="1-based data row, header excluded (CSV).")
    passenger_id: str | None = Field(default=None, description="The CSV row's PassengerId, when it has one.")
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: a summary plus the individual problems."""

    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)


class ModelInfo(BaseModel):
    """What a served model is and how it was trained."""

    name: VariantName
    version: str
    run_id: str
    created_at: str
    has_batchnorm: bool
    architecture: ModelConfig
    layers: list[str]
    preprocessing: Preprocessing
    hyperparameters: Hyperparameters
    seed: int
    data: DataInfo
    weights_sha256: str
    versions: dict[str, str]


class ModelMetrics(BaseModel):
    """A model's final-epoch validation metrics, its curves and the run's settings."""

    validation: ValidationMetrics
    curves: Curves
    training: dict[str, Any]


class MetricsReport(BaseModel):
    """GET /metrics as JSON."""

    models: dict[VariantName, ModelMetrics]
    baseline: Baseline
    study: StudyReport | None = Field(default=None, description="The multi-seed study, when it has been run.")


class Health(BaseModel):
    """Liveness / readiness answer."""

    status: str
    models: list[VariantName] = Field(default_factory=list)
