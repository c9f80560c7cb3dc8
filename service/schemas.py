"""The API contract: request and response models, with the documented bounds and examples."""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from survival.checkpoint import Baseline, Curves, DataInfo, Hyperparameters, ValidationMetrics
from survival.features import Preprocessing
from survival.rules import RULES, RuleError, check_value
from survival.study import StudyReport
from survival.variants import ModelConfig, VariantName

# Kaggle columns a pasted train.csv/test.csv row may carry; accepted and ignored so such a row works.
# Any other unknown field is rejected: a typo like "agee" must not silently fall back to the median age.
IGNORED_KAGGLE_FIELDS: Final[frozenset[str]] = frozenset(
    {"PassengerId", "Survived", "Name", "Sex", "SibSp", "Parch", "Ticket", "Cabin", "Embarked"}
)


def _rule_validator(name: str) -> Any:
    """A pydantic validator and JSON schema that apply survival/rules.py's rule for `name`."""
    rule = RULES[name]

    def validate(value: object) -> float | int | None:
        try:
            number = check_value(name, value)
        except RuleError as exc:
            raise ValueError(exc.message) from None  # pydantic reports it under the field's name
        if math.isnan(number):
            return None
        return int(number) if rule.integer else number

    return (PlainValidator(validate), WithJsonSchema(rule.json_schema()))


PclassValue = Annotated[int, *_rule_validator("pclass")]
FareValue = Annotated[float | None, *_rule_validator("fare")]
AgeValue = Annotated[float | None, *_rule_validator("age")]


class Passenger(BaseModel):
    """One passenger. Kaggle's spellings Pclass, Fare and Age are accepted too, and its other columns ignored.

    The values follow survival/rules.py (the same functions the JSON batch path, the CSV reader and the
    trainer call); this model is the documented contract and the OpenAPI schema.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"pclass": 3, "fare": 7.25, "age": 22}, {"pclass": 1, "fare": 71.28}]},
    )

    pclass: PclassValue = Field(validation_alias=AliasChoices("pclass", "Pclass"))
    fare: FareValue = Field(default=None, validation_alias=AliasChoices("fare", "Fare"))
    age: AgeValue = Field(default=None, validation_alias=AliasChoices("age", "Age"))

    @model_validator(mode="before")
    @classmethod
    def drop_ignored_kaggle_fields(cls, data: Any) -> Any:
        """Drop the Kaggle columns that the model does not use; refuse a field given under both spellings."""
        if not isinstance(data, dict):
            return data
        for name, rule in RULES.items():
            if name in data and rule.column in data:
                raise ValueError(f"{name} given twice, as {name!r} and {rule.column!r}: send one of them")
        return {k: v for k, v in data.items() if k not in IGNORED_KAGGLE_FIELDS}


class PassengerBatch(BaseModel):
    """Several passengers, answered in the same order."""

    model_config = ConfigDict(extra="forbid")

    passengers: list[Passenger] = Field(min_length=1, description="At least one passenger; at most MAX_BATCH_SIZE.")


class ModelPrediction(BaseModel):
    """One model's answer for one passenger."""

    survival_probability: float = Field(ge=0, le=1, examples=[0.27])
    survived: bool = Field(description="survival_probability >= 0.5")


class ServedVersion(BaseModel):
    """Which checkpoint answered."""

    version: str = Field(description="First 12 hex digits of the weights file's sha256.")
    run_id: str


class PredictionRow(BaseModel):
    """One passenger's answers, one per requested model, and which missing values were filled."""

    id: str = Field(
        description="The prediction's id, `<request id>/<row>` (rows from 0): what POST /feedback names it by."
    )
    batchnorm: ModelPrediction | None = None
    plain: ModelPrediction | None = None
    filled: list[Literal["fare", "age"]] | None = Field(
        default=None,
        description="Present when the passenger lacked a value: the fields filled with the training values "
        "(age: the median age; fare: the median fare of the passenger's class).",
    )


class PredictResponse(BaseModel):
    """Predictions in input order; each row holds the answer of every requested model."""

    request_id: str = Field(description="The request's id: its X-Request-ID when sane, else a generated one.")
    predictions: list[PredictionRow]
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
    study_problem: str | None = Field(
        default=None, description="Why the study results cannot be shown (unreadable, too large, invalid), if so."
    )


class Health(BaseModel):
    """Liveness / readiness answer."""

    status: str
    models: list[VariantName] = Field(default_factory=list)


class ServingRun(BaseModel):
    """The run this process answers with."""

    run_id: str
    since: str = Field(description="When this process started serving it (UTC, ISO 8601).")


class LastReload(BaseModel):
    """The last attempt to load a new run (by the poller or an explicit reload)."""

    at: str
    run_id: str | None = Field(description="The run it tried to load (null when `current` pointed nowhere).")
    ok: bool
    error: str | None = Field(description="Why the run was refused; the old run kept being served.")


class RunInfo(BaseModel):
    """One complete run on disk."""

    run_id: str
    created_at: str
    seed: int
    epochs: int
    data_file: str
    data_sha256: str = Field(description="The first 12 hex digits of the training file's sha256.")
    accuracy: dict[VariantName, float] = Field(description="Final-epoch validation accuracy of each variant.")
    current: bool = Field(description="`current` points at this run.")
    serving: bool = Field(description="This process serves this run.")


class RunsReport(BaseModel):
    """What is served, what `current` points at, the last reload, and every run on disk (oldest first)."""

    serving: ServingRun | None
    current: str | None = Field(description="The run id `current` points at on disk, or null.")
    last_reload: LastReload | None = Field(description="Null before the first reload attempt.")
    runs: list[RunInfo]
    problems: list[str] = Field(
        default_factory=list,
        description="What could not be listed and why (an unreadable directory, an incomplete run); paths are "
        "relative to MODEL_DIR.",
    )
