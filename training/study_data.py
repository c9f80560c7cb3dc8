"""The study's resamples: which splits it trains on, on which input scaling, stacked for the batched engine.

A resample is one seed's stratified hold-out split (exactly `train_run`'s with that seed) or, with k-fold, one
fold of one seed's repeated stratified k-fold. A slot is a resample on one scaling: the unit the engine trains
both variants on (same split, initial weights and batch order), so every arm's r-th value is paired with every
other arm's r-th value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from survival.study import Scaling
from training.batched import SeedData
from training.data import Dataset, IntArray, stratified_split
from training.loop import TrainConfig
from training.run import PreparedSplit, prepare_indices


@dataclass(frozen=True)
class Slot:
    """Resample `resample` (seed `seed`) on one input scaling, prepared."""

    scaling: Scaling
    resample: int
    seed: int
    split: PreparedSplit


def resample_indices(
    dataset: Dataset, seeds: Sequence[int], folds: int | None, val_fraction: float
) -> list[tuple[int, IntArray, IntArray]]:
    """(seed, train indices, validation indices) of every resample, in resample order."""
    out: list[tuple[int, IntArray, IntArray]] = []
    for seed in seeds:
        if folds is None:
            out.append((seed, *stratified_split(dataset.labels, seed, val_fraction)))
            continue
        kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train_idx, val_idx in kfold.split(dataset.raw, dataset.labels):
            out.append((seed, np.sort(train_idx).astype(np.int64), np.sort(val_idx).astype(np.int64)))
    return out


def make_slots(
    dataset: Dataset, seeds: Sequence[int], folds: int | None, scalings: Sequence[Scaling], config: TrainConfig
) -> list[Slot]:
    """Every resample on every scaling, prepared by the trainer's own `prepare_indices`."""
    indices = resample_indices(dataset, seeds, folds, config.val_fraction)
    return [
        Slot(
            scaling,
            r,
            seed,
            prepare_indices(dataset, train_idx, val_idx, replace(config, standardize=scaling == "standardized")),
        )
        for scaling in scalings
        for r, (seed, train_idx, val_idx) in enumerate(indices)
    ]


def stacks(slots: Sequence[Slot]) -> list[tuple[list[Slot], SeedData]]:
    """The slots grouped by split size (k-fold folds differ by a row), each group stacked for the engine."""
    groups: dict[tuple[int, int], list[Slot]] = {}
    for slot in slots:
        groups.setdefault((slot.split.x_train.shape[0], slot.split.x_val.shape[0]), []).append(slot)
    out = []
    for group in groups.values():
        data = SeedData(
            seeds=tuple(s.seed for s in group),
            x_train=torch.stack([s.split.x_train for s in group]),
            y_train=torch.stack([s.split.y_train for s in group]),
            x_val=torch.stack([s.split.x_val for s in group]),
            y_val=torch.stack([s.split.y_val for s in group]),
        )
        out.append((group, data))
    return out


def labels(dataset: Dataset, slot: Slot) -> tuple[IntArray, IntArray]:
    """The slot's (training, validation) labels."""
    return dataset.labels[slot.split.train_idx], dataset.labels[slot.split.val_idx]


def logistic_accuracy(dataset: Dataset, slot: Slot) -> float:
    """Validation accuracy of scikit-learn's LogisticRegression fitted on the slot's own training inputs."""
    y_train, y_val = labels(dataset, slot)
    x_train, x_val = slot.split.x_train.double().numpy(), slot.split.x_val.double().numpy()
    # lbfgs converges in about 30 iterations on raw inputs, 8 on standardized ones; the bound only guards.
    model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    return float((model.predict(x_val) == y_val).mean())
