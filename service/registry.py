"""The loaded models: each checkpoint folded into its deployment form, with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from survival.checkpoint import Checkpoint, CheckpointMetadata, load_pair
from survival.features import FloatArray, preprocess
from survival.model import VARIANTS, SurvivalNet, VariantName


def fold_layers(model: SurvivalNet) -> list[tuple[FloatArray, FloatArray]]:
    """(weight (in, out), bias) per affine layer, with each eval-mode BatchNorm folded into its Linear.

    In eval() a BatchNorm layer is a fixed affine map built from its running statistics, so
    Linear -> BN equals one Linear; what remains is affine -> ReLU -> ... -> affine.
    """
    if model.training:
        raise ValueError("fold_layers needs a model in eval() mode (BN must use its running statistics)")
    layers: list[tuple[FloatArray, FloatArray]] = []
    modules = list(model.net)
    with torch.no_grad():
        for i, module in enumerate(modules):
            if not isinstance(module, nn.Linear):
                continue
            after = modules[i + 1] if i + 1 < len(modules) else None
            linear = fuse_linear_bn_eval(module, after) if isinstance(after, nn.BatchNorm1d) else module
            weight = linear.weight.detach().to(torch.float64).numpy().T.copy()
            bias = linear.bias.detach().to(torch.float64).numpy().copy()
            layers.append((weight, bias))
    return layers


@dataclass(frozen=True)
class ServedModel:
    """One variant as served: folded float64 layers plus the checkpoint's metadata."""

    name: VariantName
    metadata: CheckpointMetadata
    layers: list[tuple[FloatArray, FloatArray]]

    @classmethod
    def from_checkpoint(cls, name: VariantName, checkpoint: Checkpoint) -> ServedModel:
        """Fold a loaded checkpoint into its serving form."""
        return cls(name=name, metadata=checkpoint.metadata, layers=fold_layers(checkpoint.model))

    @property
    def version(self) -> str:
        """Identifies the exact weights (a prefix of their sha256)."""
        return self.metadata.version

    def predict_proba(self, raw: FloatArray) -> FloatArray:
        """Survival probabilities for raw rows (Pclass, Fare, Age with NaN for unknown)."""
        # NumPy matmuls on a few rows cost microseconds; a torch call per layer costs more in
        # dispatch than in arithmetic at this size, which is why the served form is NumPy.
        h = preprocess(raw, self.metadata.preprocessing)
        last = len(self.layers) - 1
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight + bias
            if i < last:
                np.maximum(h, 0.0, out=h)
        logits = h[:, 0]
        # sigmoid(x) = exp(-log(1 + exp(-x))), stable for large |x|.
        probs: FloatArray = np.exp(-np.logaddexp(0.0, -logits))
        return probs


@dataclass(frozen=True)
class Registry:
    """Both served variants of one training run."""

    models: dict[VariantName, ServedModel]
    run_id: str
    model_dir: Path

    @classmethod
    def load(cls, model_dir: Path) -> Registry:
        """Load and fold both checkpoints of the current run (raises CheckpointError with a clear message)."""
        pair = load_pair(model_dir)
        models = {name: ServedModel.from_checkpoint(name, pair[name]) for name in VARIANTS}
        run_id = models["batchnorm"].metadata.run_id
        return cls(models=models, run_id=run_id, model_dir=model_dir)
