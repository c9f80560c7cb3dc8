"""Checkpoints as torch sees them: a state dict out of a SurvivalNet, and the weights file back into one.

Used by the trainer and the tests only; the service reads the served form (`survival.served`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from survival.checkpoint import (
    WEIGHTS_FILE,
    CheckpointError,
    CheckpointMetadata,
    check_pair,
    current_run_dir,
    read_metadata,
    read_tensors,
)
from survival.model import VARIANTS, SurvivalNet, VariantName


@dataclass(frozen=True)
class Checkpoint:
    """A loaded variant: the model in eval() mode and its metadata."""

    model: SurvivalNet
    metadata: CheckpointMetadata
    path: Path


def state_arrays(model: torch.nn.Module) -> dict[str, np.ndarray[Any, Any]]:
    """The model's state dict as contiguous CPU NumPy arrays, as `survival.runs.save_run` writes them."""
    return {k: np.asarray(v.detach().to("cpu").numpy(), order="C") for k, v in model.state_dict().items()}


def load_checkpoint(variant_dir: Path) -> Checkpoint:
    """Load one variant's weights: verify the metadata, the weights' hash and shapes; the model comes back in eval()."""
    metadata = read_metadata(variant_dir)
    weights_path = variant_dir / WEIGHTS_FILE
    state = read_tensors(weights_path, metadata.weights_sha256, metadata.tensors, lambda p: load_file(p, device="cpu"))
    model = SurvivalNet(metadata.model)
    shapes = {k: list(v.shape) for k, v in state.items()}
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    if shapes != expected:
        raise CheckpointError(
            f"{weights_path}: tensors {shapes} do not fit the architecture in the metadata {expected}"
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return Checkpoint(model=model, metadata=metadata, path=variant_dir)


def load_pair(model_dir: Path) -> dict[VariantName, Checkpoint]:
    """Load both variants of the current run into SurvivalNets; refuse a pair that comes from two different runs."""
    run_dir = current_run_dir(model_dir)
    loaded = {name: load_checkpoint(run_dir / name) for name in VARIANTS}
    check_pair(run_dir, {name: ckpt.metadata for name, ckpt in loaded.items()})
    return loaded
