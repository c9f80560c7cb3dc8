"""The checkpoint format, without torch: metadata schema, file names, hash and shape checks (service and trainer).

Layout of a model directory::

    models/
      current -> runs/<run_id>          symlink, swapped atomically when a run completes
      runs/<run_id>/<variant>/model.safetensors     the training weights (state_dict, float32), for torch
      runs/<run_id>/<variant>/served.safetensors    the served form: folded float64 layers, read with NumPy
      runs/<run_id>/<variant>/metadata.json         everything else, with both files' sha256 and shapes
      runs/<run_id>/<variant>/<artifact>            extra files (e.g. reference.json), sha256 in the metadata

`survival.runs` writes and lists runs, `survival.served` loads the served form (what the service
imports), `survival.torch_checkpoint` loads the weights into a SurvivalNet (the trainer and tests).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from survival.features import FEATURES, Preprocessing
from survival.jsonfile import JsonFileError, read_json_model
from survival.variants import ModelConfig, VariantName

# 2: adds the served form (served.safetensors) and artifacts.
FORMAT_VERSION: Final[int] = 2
WEIGHTS_FILE: Final[str] = "model.safetensors"
SERVED_FILE: Final[str] = "served.safetensors"
METADATA_FILE: Final[str] = "metadata.json"
CURRENT_LINK: Final[str] = "current"
RUNS_DIR: Final[str] = "runs"
TMP_PREFIX: Final[str] = ".tmp-"
RESERVED_FILES: Final[frozenset[str]] = frozenset({WEIGHTS_FILE, SERVED_FILE, METADATA_FILE})
ARTIFACT_NAME: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RETRAIN_HINT: Final[str] = "retrain: python -m training"


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt or inconsistent; the message names the file and the problem."""


class Hyperparameters(BaseModel):
    """The training settings shared by both variants of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int
    learning_rate: float
    batch_size: int
    optimizer: str = "adam"
    loss: str = "bce_with_logits"
    val_fraction: float
    threads: int
    device: str
    dtype: str = "float32"


class DataInfo(BaseModel):
    """Which data a run saw: a hash of the file and the split sizes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file_name: str
    sha256: str
    n_rows: int
    n_train: int
    n_val: int
    train_positive_rate: float


class Curves(BaseModel):
    """Per-epoch curves, all evaluated in eval() mode after the epoch's updates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_loss: list[float] = Field(default_factory=list)
    train_accuracy: list[float] = Field(default_factory=list)
    val_loss: list[float] = Field(default_factory=list)
    val_accuracy: list[float] = Field(default_factory=list)


class ValidationMetrics(BaseModel):
    """Final-epoch metrics on the validation split (never a best epoch picked on it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    threshold: float
    accuracy: float
    log_loss: float
    roc_auc: float | None = Field(description="None when the split holds a single class.")
    precision: float
    recall: float
    f1: float
    brier: float
    confusion_matrix: tuple[tuple[int, int], tuple[int, int]] = Field(description="[[tn, fp], [fn, tp]] at threshold.")


class Baseline(BaseModel):
    """The majority-class predictor (fitted on the training split), the floor every model must beat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    majority_class: int
    majority_accuracy: float


class CheckpointMetadata(BaseModel):
    """Everything about one trained variant except its weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = FORMAT_VERSION
    variant: VariantName
    run_id: str
    created_at: str
    model: ModelConfig
    preprocessing: Preprocessing
    hyperparameters: Hyperparameters
    seed: int
    data: DataInfo
    curves: Curves
    metrics: ValidationMetrics
    baseline: Baseline
    versions: dict[str, str]
    tensors: dict[str, list[int]] = Field(description="Name -> shape of every tensor in the weights file.")
    weights_sha256: str
    # The served form (format 2 on). None in runs written before it existed, which the service refuses.
    served_tensors: dict[str, list[int]] | None = Field(
        default=None, description="Name -> shape of every float64 tensor in the served (folded) file."
    )
    served_sha256: str | None = None
    artifacts: dict[str, str] = Field(
        default_factory=dict, description="File name -> sha256 of each extra file saved with this variant."
    )

    @property
    def version(self) -> str:
        """A short id of the exact weights served."""
        return self.weights_sha256[:12]


class Shaped(Protocol):
    """A tensor or array: all the checks need is its shape."""

    @property
    def shape(self) -> tuple[int, ...]: ...


TensorT = TypeVar("TensorT", bound=Shaped)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(variant_dir: Path) -> CheckpointMetadata:
    """A variant's validated metadata.json, checked against this code's feature list."""
    if not variant_dir.is_dir():
        raise CheckpointError(f"{variant_dir}: checkpoint directory is missing")
    path = variant_dir / METADATA_FILE
    try:
        metadata = read_json_model(path, CheckpointMetadata)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: metadata file is missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    except JsonFileError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if tuple(metadata.preprocessing.features) != FEATURES or metadata.model.n_features != len(FEATURES):
        raise CheckpointError(
            f"{path}: feature list {list(metadata.preprocessing.features)} (n_features="
            f"{metadata.model.n_features}) does not match this code's {list(FEATURES)}"
        )
    return metadata


def verify_hash(path: Path, expected: str, what: str) -> None:
    """Refuse a missing file or one whose sha256 is not the metadata's."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file is missing")
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointError(
            f"{path}: sha256 {actual[:12]} does not match the metadata's {expected[:12]}"
            " (truncated, replaced or from another run)"
        )


def read_tensors(
    path: Path,
    expected_sha256: str,
    expected_shapes: Mapping[str, list[int]],
    load: Callable[[str], dict[str, TensorT]],
    what: str = "weights",
) -> dict[str, TensorT]:
    """Verify a safetensors file's hash, parse it with `load` and check its shapes against the metadata."""
    verify_hash(path, expected_sha256, what)
    try:
        # safetensors parses a JSON header and raw buffers; it has no way to run code (unlike pickle).
        tensors = load(str(path))
    except Exception as exc:  # the Rust parser raises its own error type, and ValueError/OSError
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if shapes != dict(expected_shapes):
        raise CheckpointError(f"{path}: tensor shapes {shapes} do not match the metadata {dict(expected_shapes)}")
    return tensors


def read_artifacts(variant_dir: Path, metadata: CheckpointMetadata) -> dict[str, bytes]:
    """Every artifact the metadata lists, hash-verified."""
    artifacts = {}
    for name, expected in metadata.artifacts.items():
        path = variant_dir / name
        verify_hash(path, expected, "artifact")
        artifacts[name] = path.read_bytes()
    return artifacts


def check_artifact_name(name: str) -> None:
    """Refuse an artifact name that is not a plain file name or collides with the checkpoint's own files."""
    if not ARTIFACT_NAME.fullmatch(name) or name in RESERVED_FILES:
        raise ValueError(
            f"artifact name {name!r}: must be a plain file name (letters, digits, '.', '_', '-'; at most 64) "
            f"other than {sorted(RESERVED_FILES)}"
        )


def check_pair(run_dir: Path, metadata: Mapping[VariantName, CheckpointMetadata]) -> str:
    """The run id both variants share; refuse a pair from two runs or a variant saved under another name."""
    run_ids = {name: meta.run_id for name, meta in metadata.items()}
    if len(set(run_ids.values())) != 1:
        raise CheckpointError(f"{run_dir}: the variants come from different training runs {run_ids}; retrain both")
    for name, meta in metadata.items():
        if meta.variant != name:
            raise CheckpointError(f"{run_dir / name / METADATA_FILE}: says variant {meta.variant!r}, expected {name!r}")
    return next(iter(run_ids.values()))


def current_run_dir(model_dir: Path) -> Path:
    """The directory ``current`` points at, resolved once (so a flip during a load cannot mix two runs)."""
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: model directory is missing (train first: python -m training)")
    link = model_dir / CURRENT_LINK
    if not link.is_dir():
        raise CheckpointError(f"{link}: no current run (train first: python -m training)")
    return link.resolve()
