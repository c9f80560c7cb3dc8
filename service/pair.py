"""The served pair: both variants of one training run in their served (folded) form, run as one network."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from survival.checkpoint import CheckpointMetadata, current_run_dir
from survival.features import FloatArray, preprocess
from survival.served import Layers, ServedCheckpoint, forward, load_served_run
from survival.variants import VARIANTS, VariantName


@dataclass(frozen=True)
class ServedModel:
    """One variant as served: folded float64 layers plus the checkpoint's metadata and artifacts."""

    name: VariantName
    metadata: CheckpointMetadata
    layers: Layers
    artifacts: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, name: VariantName, checkpoint: ServedCheckpoint) -> ServedModel:
        """The serving form of a loaded served checkpoint."""
        return cls(name=name, metadata=checkpoint.metadata, layers=checkpoint.layers, artifacts=checkpoint.artifacts)

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


def side_by_side(models: list[ServedModel]) -> Layers:
    """One network computing several same-depth models at once: inputs shared, then block-diagonal layers.

    ReLU acts elementwise, so the off-diagonal zero blocks keep the models apart exactly; output
    column j is model j's. Half the matmuls of running the two models one after the other.
    """
    combined: Layers = []
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
class ServedPair:
    """Both served variants of one training run (what `PairHolder` in service/state.py serves and swaps)."""

    models: dict[VariantName, ServedModel]
    run_id: str
    model_dir: Path
    # The resolved run directory the models were read from.
    run_dir: Path | None = None
    # The "models" part of a /predict answer for each choice of models, serialised once at load.
    versions_json: dict[tuple[VariantName, ...], str] = field(default_factory=dict)
    # Both variants as one network, when they share their preprocessing and depth (always, for one run).
    both: Layers | None = None

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
    def load(cls, model_dir: Path) -> ServedPair:
        """Load both served models of the current run (raises CheckpointError with a clear message)."""
        return cls.load_run(model_dir, current_run_dir(model_dir))

    @classmethod
    def load_run(cls, model_dir: Path, run_dir: Path) -> ServedPair:
        """Load both served models of one run directory (raises CheckpointError with a clear message)."""
        pair = load_served_run(run_dir)
        models = {name: ServedModel.from_checkpoint(name, pair[name]) for name in VARIANTS}
        run_id = models["batchnorm"].metadata.run_id
        return cls(models=models, run_id=run_id, model_dir=model_dir, run_dir=run_dir)
