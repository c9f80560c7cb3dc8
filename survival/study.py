"""The multi-seed study's results file: its schema and a loader (written by `python -m training study`).

Schema only, so the service can show the results without importing the trainer. An arm is a variant on one
input scaling ("batchnorm/raw", "plain/standardized"); every statistic is over the study's resamples (one seeded
stratified hold-out split per seed, or every fold of repeated stratified k-fold), final-epoch unless named
otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field, model_validator

from survival.jsonfile import JsonFileError, parse_json_model, read_json_model
from survival.study_parts import Frozen, LayerShift, PlanRef, Power, SpeedCurve
from survival.study_parts import Scaling as Scaling
from survival.study_parts import Stat as Stat
from survival.variants import VARIANTS, VariantName

STUDY_FORMAT_VERSION: Final = 3
# Written next to the checkpoints' `current` link.
STUDY_FILE: Final[str] = "study.json"

Verdict = Literal["holds", "does not hold", "not shown"]
# How a claim is tested (the plan, training/study_plan.py, says which test each claim gets).
TestName = Literal["corrected paired t", "corrected TOST", "exact McNemar", "not run"]
Regularization = Literal["none", "dropout 0.2", "weight decay 1e-3"]


def arm_name(variant: VariantName, scaling: Scaling) -> str:
    """The key of an arm, e.g. "batchnorm/raw"."""
    return f"{variant}/{scaling}"


class StudyData(Frozen):
    """The labelled file the study used and the (equal for every resample) split sizes."""

    file_name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    n_rows: int
    n_train: int
    n_val: int


class StudySettings(Frozen):
    """What was trained: the trainer's settings, the seeds, the scalings and the resampling."""

    seeds: list[int] = Field(min_length=2)
    folds: int | None = Field(description="None: one stratified hold-out split per seed; K: repeated K-fold.")
    resamples: int = Field(ge=2, description="Models per arm: seeds, or seeds x folds.")
    epochs: int = Field(ge=1)
    learning_rate: float
    batch_size: int
    optimizer: str
    hidden: list[int]
    val_fraction: float
    scalings: list[Scaling] = Field(min_length=1)
    loss_thresholds: list[float] = Field(description="Training losses at which epochs-to-threshold is read.")
    device: str
    dtype: str
    threads: int


class Timings(Frozen):
    """Wall-clock and process CPU seconds of each part that ran (None when not run)."""

    study: float
    study_cpu: float
    sweep: float | None = None
    regularization: float | None = None
    ics: float | None = None


class ReliabilityBin(Frozen):
    """One bin of predicted survival probability: its bounds, mean prediction, observed rate and row count."""

    low: float
    high: float
    mean_predicted: float | None
    observed: float | None
    count: int


class EpochPoint(Frozen):
    """Validation accuracy and loss after `epoch` epochs (the same runs, read on the way)."""

    epoch: int
    accuracy: Stat
    log_loss: Stat


class ArmSummary(Frozen):
    """One arm over the resamples."""

    variant: VariantName
    scaling: Scaling
    accuracy: Stat
    log_loss: Stat
    roc_auc: Stat
    train_accuracy: Stat = Field(description="Final-epoch accuracy on the training split (eval mode).")
    gap_accuracy: Stat = Field(description="Train minus validation accuracy (larger: more overfitting).")
    gap_log_loss: Stat = Field(description="Validation minus train log-loss.")
    acc_std_last: Stat = Field(description="Std (ddof=0) of validation accuracy over the last `window` epochs.")
    loss_std_last: Stat = Field(description="Std (ddof=0) of validation loss over the last `window` epochs.")
    peak_to_final: Stat = Field(
        description="OPTIMISTIC best-epoch validation accuracy (picked on the validation set) minus the final one."
    )
    best_epoch_accuracy: Stat = Field(description="OPTIMISTIC: picked on the validation set; never a result.")
    val_loss_auc: Stat = Field(description="Mean validation loss over all epochs (area under the curve / epochs).")
    train_loss_auc: Stat = Field(description="Mean training loss over all epochs (area under the curve / epochs).")
    epochs_to_threshold: list[list[int | None]] = Field(
        description="Per loss threshold (settings.loss_thresholds), per resample, the first epoch whose training "
        "loss is below it (None: never)."
    )
    ece: Stat = Field(description="Expected calibration error (10 equal-width bins) of the final validation output.")
    reliability: list[ReliabilityBin] = Field(description="Reliability diagram, pooled over resamples.")
    collapsed: int = Field(description="Runs predicting one class for every validation row (or non-finite).")
    near_collapsed: int = Field(description="Runs predicting one class for >= 95 % (but not all) of the rows.")
    accuracy_without_collapsed: Stat | None = Field(description="Accuracy over the runs that did not collapse.")
    at_epochs: list[EpochPoint]
    curve_mean: list[float] = Field(description="Validation accuracy per epoch, mean over resamples.")
    curve_std: list[float]
    curve_half95: list[float] = Field(description="Half-width of the corrected 95 % interval of curve_mean.")
    train_loss_mean: list[float] = Field(description="Training loss per epoch, mean over resamples.")
    train_loss_half95: list[float]
    val_loss_mean: list[float] = Field(description="Validation loss per epoch, mean over resamples.")
    val_loss_half95: list[float]


class Comparison(Frozen):
    """Arm `a` minus arm `b` on one metric, resample by resample (paired: same split, init and batch order)."""

    a: str
    b: str
    metric: str
    higher_is_better: bool
    mean_diff: float
    ci95: tuple[float, float] = Field(description="Paired t interval over resamples (ignores their overlap).")
    ci95_corrected: tuple[float, float] = Field(
        description="Nadeau-Bengio corrected resampled t interval (accounts for overlapping training sets)."
    )
    ahead: int = Field(description="Resamples where `a` is better.")
    tied: int
    behind: int


class Baselines(Frozen):
    """Models without a network, on the same splits and inputs."""

    majority: Stat = Field(description="Always the training split's majority class.")
    logistic: dict[Scaling, Stat] = Field(description="scikit-learn LogisticRegression on the same three inputs.")


class SweepCell(Frozen):
    """One optimizer, learning rate and arm of the sweep, over the same resamples."""

    optimizer: Literal["adam", "sgd"]
    learning_rate: float
    variant: VariantName
    scaling: Scaling
    accuracy: Stat
    val_loss_auc: Stat | None = Field(description="Over the runs that stayed finite; None when none did.")
    collapsed_runs: list[bool] = Field(description="Per resample, whether the run collapsed (or diverged).")
    collapsed: int
    near_collapsed: int
    diverged: int
    runs: int


class RegularizationCell(Frozen):
    """One regularization setting and arm: final accuracy and the train-validation gap."""

    regularization: Regularization
    variant: VariantName
    scaling: Scaling
    accuracy: Stat
    gap_log_loss: Stat


class Claim(Frozen):
    """A claim of the experiment on one input scaling: its test, estimate, interval, p-values and verdict."""

    id: str = Field(description="The plan's id of the claim.")
    claim: str
    scaling: Scaling
    measurement: str
    test: TestName
    estimate: float | None = Field(description="Mean paired difference (a minus b), or the collapse-rate difference.")
    ci95: tuple[float, float] | None = Field(description="Corrected 95 % interval of the estimate (t tests only).")
    margin: float | None = Field(description="Equivalence margin (TOST only).")
    p_value: float | None = Field(description="Raw p-value of the test (None: not run).")
    p_holm: float | None = Field(description="Holm-adjusted over every claim tested in this study.")
    result: str
    verdict: Verdict


class StudyReport(Frozen):
    """Everything `python -m training study` found, with what is needed to reproduce it."""

    format_version: Literal[3] = STUDY_FORMAT_VERSION
    created_at: str
    plan: PlanRef
    data: StudyData
    settings: StudySettings
    timings_s: Timings
    window: int = Field(description="Epochs of the steadiness measures (the last 50, or all when fewer).")
    arms: dict[str, ArmSummary]
    comparisons: list[Comparison]
    baselines: Baselines
    sweep: list[SweepCell] | None = None
    regularization: list[RegularizationCell] | None = None
    ics: list[LayerShift] | None = None
    speed: list[SpeedCurve]
    power: Power
    claims: list[Claim]
    verdict: str
    versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> StudyReport:
        # A study lacking an arm (hand-edited, truncated by a bug) is refused here rather than half-rendered.
        expected = {arm_name(v, s) for v in VARIANTS for s in self.settings.scalings}
        if set(self.arms) != expected:
            raise ValueError(f"arms {sorted(self.arms)} are not the arms of its scalings {sorted(expected)}")
        for key, arm in self.arms.items():
            if arm_name(arm.variant, arm.scaling) != key:
                raise ValueError(f"arm {key!r} holds {arm_name(arm.variant, arm.scaling)!r}")
            if len(arm.accuracy.values) != self.settings.resamples:
                raise ValueError(f"arm {key!r} has {len(arm.accuracy.values)} results for {self.settings.resamples}")
        return self


def parse_study(raw: bytes) -> StudyReport:
    """The study in the bytes of a study.json; a ValueError naming the problem (not the file) when it is invalid."""
    try:
        return parse_json_model(raw, StudyReport)
    except JsonFileError as exc:
        text = str(exc)
        prefix = "the study results are " if text.startswith("not valid JSON") else "invalid study results: "
        raise ValueError(f"{prefix}{text}") from None


def load_study(path: Path) -> StudyReport | None:
    """The study at `path`, None when the file does not exist; a ValueError naming the file when it is invalid."""
    try:
        return read_json_model(path, StudyReport)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the study results ({exc.strerror})") from None
    except JsonFileError as exc:
        text = str(exc)
        # "not valid JSON (...)" reads as "the study results are not valid JSON (...)"; a field error as
        # "invalid study results: field ...".
        prefix = "the study results are " if text.startswith("not valid JSON") else "invalid study results: "
        raise ValueError(f"{path}: {prefix}{text}") from None
