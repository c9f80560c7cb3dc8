"""Checkpoints: safetensors weights + JSON metadata, written atomically as a pair, loaded without executing code.

Layout of a model directory::

    models/
      current -> runs/<run_id>          symlink, swapped atomically when a run completes
      runs/<run_id>/batchnorm/{model.safetensors, metadata.json}
      runs/<run_id>/plain/{model.safetensors, metadata.json}

A run is written under ``runs/.tmp-<run_id>`` and only renamed and linked once both variants are on
disk, so a crash or bad input never leaves a half-written or mixed pair behind ``current`` and never
touches the previous good run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from survival.features import FEATURES, Preprocessing
from survival.jsonfile import JsonFileError, read_json_model
from survival.model import VARIANTS, ModelConfig, SurvivalNet, VariantName

FORMAT_VERSION: Final[int] = 1
WEIGHTS_FILE: Final[str] = "model.safetensors"
METADATA_FILE: Final[str] = "metadata.json"
CURRENT_LINK: Final[str] = "current"
RUNS_DIR: Final[str] = "runs"
TMP_PREFIX: Final[str] = ".tmp-"
# Keep the current run and the one before it, so an operator can roll back by relinking.
RUNS_KEPT: Final[int] = 2


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
    confusion_matrix: list[list[int]] = Field(description="[[tn, fp], [fn, tp]] at the threshold.")


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

    @property
    def version(self) -> str:
        """A short id of the exact weights served."""
        return self.weights_sha256[:12]


@dataclass(frozen=True)
class Checkpoint:
    """A loaded variant: the model in eval() mode and its metadata."""

    model: SurvivalNet
    metadata: CheckpointMetadata
    path: Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors on the CPU, contiguous, as safetensors stores them."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_run(
    model_dir: Path, run_id: str, variants: dict[VariantName, tuple[dict[str, torch.Tensor], dict[str, Any]]]
) -> Path:
    """Write every variant of a run atomically and point ``current`` at it; returns the run directory.

    `variants` maps a name to (state_dict, metadata without tensors/weights_sha256); those two
    fields are filled in here from the bytes actually written.
    """
    runs_dir = model_dir / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = runs_dir / f"{TMP_PREFIX}{run_id}"
    final_dir = runs_dir / run_id
    if final_dir.exists():
        raise CheckpointError(f"{final_dir}: a run with this id already exists")
    try:
        for name, (state, meta) in variants.items():
            vdir = tmp_dir / name
            vdir.mkdir(parents=True)
            weights_path = vdir / WEIGHTS_FILE
            save_file(state, str(weights_path))
            _fsync(weights_path)
            full = dict(meta)
            full["tensors"] = {k: list(v.shape) for k, v in state.items()}
            full["weights_sha256"] = sha256_file(weights_path)
            # Validate before writing: a metadata file that cannot be loaded back is never produced.
            text = CheckpointMetadata.model_validate(full).model_dump_json(indent=2)
            (vdir / METADATA_FILE).write_text(text + "\n", encoding="utf-8")
            _fsync(vdir / METADATA_FILE)
        os.replace(tmp_dir, final_dir)
        _fsync(runs_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    # Swap the link atomically: a reader sees either the old run or the new one, never a mix.
    link_tmp = model_dir / f"{TMP_PREFIX}{CURRENT_LINK}-{run_id}"
    link_tmp.unlink(missing_ok=True)
    os.symlink(Path(RUNS_DIR) / run_id, link_tmp)
    os.replace(link_tmp, model_dir / CURRENT_LINK)
    _fsync(model_dir)
    prune_runs(model_dir)
    return final_dir


def prune_runs(model_dir: Path, keep: int = RUNS_KEPT) -> None:
    """Remove leftovers of crashed runs and all but the newest `keep` complete runs (never the current one)."""
    runs_dir = model_dir / RUNS_DIR
    if not runs_dir.is_dir():
        return
    current = current_run_dir(model_dir)
    for stale in runs_dir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale_link in model_dir.glob(f"{TMP_PREFIX}{CURRENT_LINK}-*"):
        stale_link.unlink(missing_ok=True)
    # Run ids start with a UTC timestamp, so name order is age order.
    complete = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in complete[:-keep] if keep > 0 else complete:
        if current is None or old.resolve() != current.resolve():
            shutil.rmtree(old, ignore_errors=True)


def current_run_dir(model_dir: Path) -> Path | None:
    """The run directory that ``current`` points at, or None when there is none."""
    link = model_dir / CURRENT_LINK
    return link if link.is_dir() else None


def load_checkpoint(variant_dir: Path) -> Checkpoint:
    """Load one variant: verify the metadata, the weights' hash and shapes; the model comes back in eval()."""
    meta_path = variant_dir / METADATA_FILE
    weights_path = variant_dir / WEIGHTS_FILE
    if not variant_dir.is_dir():
        raise CheckpointError(f"{variant_dir}: checkpoint directory is missing")
    metadata = _read_metadata(meta_path)
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: weights file is missing")
    if tuple(metadata.preprocessing.features) != FEATURES or metadata.model.n_features != len(FEATURES):
        raise CheckpointError(
            f"{meta_path}: feature list {list(metadata.preprocessing.features)} (n_features="
            f"{metadata.model.n_features}) does not match this code's {list(FEATURES)}"
        )
    actual_sha = sha256_file(weights_path)
    if actual_sha != metadata.weights_sha256:
        raise CheckpointError(
            f"{weights_path}: sha256 {actual_sha[:12]} does not match the metadata's {metadata.weights_sha256[:12]}"
            " (truncated, replaced or from another run)"
        )
    try:
        # safetensors parses a JSON header and raw buffers; it has no way to run code (unlike pickle).
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    shapes = {k: list(v.shape) for k, v in state.items()}
    if shapes != metadata.tensors:
        raise CheckpointError(f"{weights_path}: tensor shapes {shapes} do not match the metadata {metadata.tensors}")
    model = SurvivalNet(metadata.model)
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    if shapes != expected:
        raise CheckpointError(
            f"{weights_path}: tensors {shapes} do not fit the architecture in the metadata {expected}"
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return Checkpoint(model=model, metadata=metadata, path=variant_dir)


def load_pair(model_dir: Path) -> dict[VariantName, Checkpoint]:
    """Load both variants of the current run; refuse a pair that comes from two different runs."""
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: model directory is missing (train first: python -m training)")
    run_dir = current_run_dir(model_dir)
    if run_dir is None:
        raise CheckpointError(f"{model_dir / CURRENT_LINK}: no current run (train first: python -m training)")
    loaded = {name: load_checkpoint(run_dir / name) for name in VARIANTS}
    run_ids = {name: ckpt.metadata.run_id for name, ckpt in loaded.items()}
    if len(set(run_ids.values())) != 1:
        raise CheckpointError(f"{run_dir}: the variants come from different training runs {run_ids}; retrain both")
    for name, ckpt in loaded.items():
        if ckpt.metadata.variant != name:
            raise CheckpointError(
                f"{ckpt.path / METADATA_FILE}: says variant {ckpt.metadata.variant!r}, expected {name!r}"
            )
    return loaded


def _read_metadata(path: Path) -> CheckpointMetadata:
    try:
        return read_json_model(path, CheckpointMetadata)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: metadata file is missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    except JsonFileError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
