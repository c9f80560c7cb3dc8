"""The loaded models: each checkpoint folded into its deployment form, with its metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
        return self.probabilities(preprocess(raw, self.metadata.preprocessing))

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Survival probabilities for already preprocessed rows."""
        return forward(self.layers, features)[:, 0]


def forward(layers: list[tuple[FloatArray, FloatArray]], features: FloatArray) -> FloatArray:
    """Affine -> ReLU -> ... -> affine, then the sigmoid: probabilities, one column per output."""
    # NumPy matmuls on a few rows cost microseconds; a torch call per layer costs more in
    # dispatch than in arithmetic at this size, which is why the served form is NumPy.
    h = features
    last = len(layers) - 1
    for i, (weight, bias) in enumerate(layers):
        h = h @ weight + bias  # a new array: `features` is never modified
        if i < last:
            np.maximum(h, 0.0, out=h)
    # sigmoid(x) = exp(-log(1 + exp(-x))), stable for large |x|.
    probs: FloatArray = np.exp(-np.logaddexp(0.0, -h))
    return probs


def side_by_side(models: list[ServedModel]) -> list[tuple[FloatArray, FloatArray]]:
    """One network computing several same-depth models at once: inputs shared, then block-diagonal layers.

    ReLU acts elementwise, so the off-diagonal zero blocks keep the models apart exactly; output
    column j is model j's. Half the matmuls of running the two models one after the other.
    """
    combined = []
    for depth, parts in enumerate(zip(*(m.layers for m in models), strict=True)):
        weights = [w for w, _ in parts]
        bias = np.concatenate([b for _, b in parts])
        if depth == 0:
            weight = np.concatenate(weights, axis=1)  # every model reads the same inputs
        else:
            weight = np.zeros((sum(w.shape[0] for w in weights), sum(w.shape[1] for w in weights)))
            row = col = 0
            for w in weights:
                weight[row : row + w.shape[0], col : col + w.shape[1]] = w
                row, col = row + w.shape[0], col + w.shape[1]
        combined.append((weight, bias))
    return combined


@dataclass(frozen=True)
class Registry:
    """Both served variants of one training run."""

    models: dict[VariantName, ServedModel]
    run_id: str
    model_dir: Path
    # The "models" part of a /predict answer for each choice of models, serialised once at load.
    versions_json: dict[tuple[VariantName, ...], str] = field(default_factory=dict)
    # Both variants as one network, when they share their preprocessing and depth (always, for one run).
    both: list[tuple[FloatArray, FloatArray]] | None = None

    def __post_init__(self) -> None:
        served = [self.models[name] for name in VARIANTS]
        same_prep = len({m.metadata.preprocessing for m in served}) == 1
        if same_prep and len({len(m.layers) for m in served}) == 1:
            object.__setattr__(self, "both", side_by_side(served))
        choices: list[tuple[VariantName, ...]] = [VARIANTS, *((name,) for name in VARIANTS)]
        for names in choices:
            versions = {name: {"version": self.models[name].version, "run_id": self.run_id} for name in names}
            self.versions_json[names] = json.dumps(versions, separators=(",", ":"))

    def predict(self, raw: FloatArray, names: tuple[VariantName, ...]) -> dict[VariantName, FloatArray]:
        """Probabilities of each named model; rows are preprocessed once when the models share the values."""
        if names == VARIANTS and self.both is not None:
            probs = forward(self.both, preprocess(raw, self.models[names[0]].metadata.preprocessing))
            return {name: probs[:, j] for j, name in enumerate(names)}
        shared = {self.models[name].metadata.preprocessing for name in names}
        if len(shared) == 1:
            features = preprocess(raw, shared.pop())
            return {name: self.models[name].probabilities(features) for name in names}
        return {name: self.models[name].predict_proba(raw) for name in names}

    @classmethod
    def load(cls, model_dir: Path) -> Registry:
        """Load and fold both checkpoints of the current run (raises CheckpointError with a clear message)."""
        pair = load_pair(model_dir)
        models = {name: ServedModel.from_checkpoint(name, pair[name]) for name in VARIANTS}
        run_id = models["batchnorm"].metadata.run_id
        return cls(models=models, run_id=run_id, model_dir=model_dir)
