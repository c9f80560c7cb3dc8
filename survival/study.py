"""The multi-seed study's results file: its schema and a loader (written by `python -m training study`).

Schema only, so the service can show the results without importing the trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from survival.jsonfile import JsonFileError, read_json_model
from survival.variants import VariantName

STUDY_FORMAT_VERSION: Final[int] = 1
# Written next to the checkpoints' `current` link.
STUDY_FILE: Final[str] = "study.json"

MetricName = Literal["accuracy", "log_loss", "roc_auc", "stability_last50"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stat(_Frozen):
    """A quantity over the seeds: mean, sample std (ddof=1) and the per-seed values in seed order."""

    mean: float
    std: float
    values: list[float]


class StudyData(_Frozen):
    """The labelled file the study used and the (equal for every seed) split sizes."""

    file_name: str
    sha256: str
    n_rows: int = 0
    n_train: int = 0
    n_val: int = 0


class Timings(_Frozen):
    """Seconds of the study itself and of the learning-rate sweep (None when not run): wall clock, and CPU time
    of the process (on a shared machine the wall clock also counts other programs' turns)."""

    study: float
    sweep: float | None = None
    study_cpu: float | None = None
    sweep_cpu: float | None = None


class VariantSummary(_Frozen):
    """One variant over the seeds; everything is final-epoch on the validation split unless named otherwise."""

    accuracy: Stat
    log_loss: Stat
    roc_auc: Stat
    stability_last50: Stat = Field(
        description="Per seed, the std (ddof=0) of validation accuracy over the last `stability_window` epochs."
    )
    best_epoch_accuracy: Stat = Field(
        description="OPTIMISTIC: the highest validation accuracy of any epoch, an epoch chosen on the validation "
        "set itself; shown only to measure how far the final epoch falls back, never as a result."
    )
    best_minus_final: Stat = Field(description="best_epoch_accuracy minus the final-epoch accuracy (optimistic).")


class PairedComparison(_Frozen):
    """Batchnorm minus plain, seed by seed (same split, initial weights and batch order within a seed)."""

    metric: MetricName
    mean_diff: float = Field(description="Mean over seeds of batchnorm minus plain.")
    ci95: tuple[float, float]
    method: str
    ahead: int = Field(description="Seeds where batchnorm is better (higher, or lower when lower is better).")
    tied: int
    behind: int
    higher_is_better: bool


class SweepCell(_Frozen):
    """One optimizer, learning rate and variant of the sweep, over the same seeds."""

    optimizer: Literal["adam", "sgd"]
    learning_rate: float
    variant: VariantName
    accuracy: Stat = Field(description="Final-epoch validation accuracy.")
    collapsed: int = Field(description="Runs that predict a single class for the whole validation split.")
    runs: int
    diverged: int = Field(default=0, description="Runs whose outputs became non-finite (also counted as collapsed).")


class StudyReport(_Frozen):
    """Everything `python -m training study` found, with what is needed to reproduce it."""

    format_version: int = STUDY_FORMAT_VERSION
    created_at: str
    data: StudyData
    seeds: list[int]
    epochs: int
    learning_rate: float
    batch_size: int
    optimizer: str = "adam"
    hidden: list[int] = Field(default_factory=lambda: [16, 8])
    device: str
    dtype: str = "float32"
    threads: int = 1
    timings_s: Timings
    variants: dict[VariantName, VariantSummary]
    paired: list[PairedComparison]
    paired_stability: PairedComparison | None = Field(
        default=None, description="Stability (lower is steadier), batchnorm minus plain."
    )
    stability_window: int = 50
    baseline_accuracy: Stat | None = Field(
        default=None, description="Always predicting the training split's majority class, per seed."
    )
    sweep: list[SweepCell] | None
    verdict: str
    versions: dict[str, str] = Field(default_factory=dict)


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
