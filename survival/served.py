"""The served form of a variant: folded float64 affine layers, stored as safetensors and read with NumPy.

In eval() mode a BatchNorm layer is a fixed affine map of its running statistics, so the trainer
folds each one into the Linear before it (`training/fold.py`) and writes the result next to the
weights. Serving is then affine -> ReLU -> ... -> affine -> sigmoid in NumPy: no torch in the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from safetensors.numpy import load_file

from survival.checkpoint import (
    RETRAIN_HINT,
    SERVED_FILE,
    CheckpointError,
    CheckpointMetadata,
    check_pair,
    current_run_dir,
    read_artifacts,
    read_metadata,
    read_tensors,
)
from survival.features import FloatArray
from survival.variants import VARIANTS, ModelConfig, VariantName

Layers = list[tuple[FloatArray, FloatArray]]
# A passenger is predicted to survive when the model's probability is at least this (every answer, every protocol,
# the trainer's metrics and the dashboard's confusion matrices).
DECISION_THRESHOLD: Final[float] = 0.5


def layer_tensors(layers: Layers) -> dict[str, FloatArray]:
    """Named float64 arrays of the layers, as the served file stores them: weight (in, out) and bias (out,)."""
    tensors: dict[str, FloatArray] = {}
    for i, (weight, bias) in enumerate(layers):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(weight, dtype=np.float64)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(bias, dtype=np.float64)
    return tensors


def expected_shapes(config: ModelConfig) -> dict[str, list[int]]:
    """The served tensors' names and shapes that the architecture implies."""
    shapes: dict[str, list[int]] = {}
    for i, (n_in, n_out) in enumerate(config.layer_shapes()):
        shapes[f"layers.{i}.weight"] = [n_in, n_out]
        shapes[f"layers.{i}.bias"] = [n_out]
    return shapes


def tensor_layers(tensors: dict[str, FloatArray], config: ModelConfig, path: Path) -> Layers:
    """The layers of a served file, checked against the architecture (names, shapes, float64)."""
    expected = expected_shapes(config)
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if shapes != expected:
        raise CheckpointError(f"{path}: tensors {shapes} do not fit the architecture in the metadata {expected}")
    odd = sorted(k for k, v in tensors.items() if v.dtype != np.float64)
    if odd:
        raise CheckpointError(f"{path}: tensors {odd} are not float64")
    return [(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]) for i in range(len(config.layer_shapes()))]


def forward(layers: Layers, features: FloatArray) -> FloatArray:
    """Affine -> ReLU -> ... -> affine, then the sigmoid: probabilities, one column per output."""
    # NumPy matmuls on a few rows cost microseconds; a torch call per layer costs more in
    # dispatch than in arithmetic at this size, which is why the served form is NumPy.
    h = features
    last = len(layers) - 1
    for i, (weight, bias) in enumerate(layers):
        h = h @ weight  # a new array: `features` is never modified
        h += bias
        if i < last:
            np.maximum(h, 0.0, out=h)
    # sigmoid(x) = exp(-log(1 + exp(-x))), stable for large |x|.
    probs: FloatArray = np.exp(-np.logaddexp(0.0, -h))
    return probs


@dataclass(frozen=True)
class ServedCheckpoint:
    """One variant as the service loads it: folded layers, metadata and verified artifacts."""

    metadata: CheckpointMetadata
    layers: Layers
    path: Path
    artifacts: dict[str, bytes] = field(default_factory=dict)


def load_served(variant_dir: Path) -> ServedCheckpoint:
    """Load one variant's served form: metadata, the served file's hash, shapes and dtype, its artifacts."""
    metadata = read_metadata(variant_dir)
    path = variant_dir / SERVED_FILE
    if metadata.served_sha256 is None or metadata.served_tensors is None:
        raise CheckpointError(
            f"{variant_dir}: written before the served form existed (format {metadata.format_version}, no "
            f"{SERVED_FILE}); {RETRAIN_HINT}"
        )
    tensors = read_tensors(path, metadata.served_sha256, metadata.served_tensors, load_file, "served")
    layers = tensor_layers(tensors, metadata.model, path)
    return ServedCheckpoint(
        metadata=metadata, layers=layers, path=variant_dir, artifacts=read_artifacts(variant_dir, metadata)
    )


def load_served_run(run_dir: Path) -> dict[VariantName, ServedCheckpoint]:
    """Both variants of one run; refuses a pair mixed from two runs."""
    loaded = {name: load_served(run_dir / name) for name in VARIANTS}
    check_pair(run_dir, {name: ckpt.metadata for name, ckpt in loaded.items()})
    return loaded


def load_served_current(model_dir: Path) -> tuple[Path, dict[VariantName, ServedCheckpoint]]:
    """The run ``current`` points at (resolved once) and its served pair."""
    run_dir = current_run_dir(model_dir)
    return run_dir, load_served_run(run_dir)
