"""Internal covariate shift and gradient predictiveness (Santurkar et al. 2018, "How Does Batch Normalization
Help Optimization?"), measured on the study's default arms.

- Input shift: after every epoch, the mean and std of each hidden layer's inputs (the previous block's
  activations) over the whole training split, in training mode (batch statistics, running statistics
  untouched); per model, the mean over units and epochs of (|change of the mean| + |change of the std|) /
  the previous std.
- Gradient predictiveness: every `PROBE_EVERY` epochs, the full-batch gradient g at the weights w and g' at
  w - `PROBE_STEP` * g; per model, the mean over probes of ||g - g'|| / ||g|| (smaller: a smoother landscape
  along the gradient, the paper's "effective beta-smoothness").

The probe changes nothing in training: the weights are restored bit for bit and the gradient buffer is
overwritten by the next step's backward pass anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import torch

from survival.model import VARIANTS, VariantName
from survival.study import LayerShift, Scaling
from training.batched import BatchedNet, train_batched
from training.data import Dataset
from training.loop import TrainConfig
from training.study_data import Slot, stacks
from training.study_stats import stat

PROBE_EVERY: Final[int] = 10
PROBE_STEP: Final[float] = 0.1


class ShiftProbe:
    """Accumulates both measures for every model of one stack."""

    def __init__(self) -> None:
        self.previous: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.shift: list[torch.Tensor] = []  # per hidden layer, the summed per-model shift
        self.epochs = 0
        self.gradient: torch.Tensor | None = None
        self.probes = 0

    @torch.no_grad()
    def __call__(self, net: BatchedNet, x: torch.Tensor, y: torch.Tensor, epoch: int) -> None:
        """Measure after epoch `epoch`'s updates."""
        logits, tape = net.forward(x, train=True, update_stats=False)
        moments = [(h.mean(dim=1), h.std(dim=1)) for h in tape.inputs[1:]]
        if self.previous:
            # Relative to the previous std, so a layer's scale (plain's activations on raw inputs are large) does
            # not decide the comparison; a dead unit (std 0, no change) contributes 0.
            moved = [
                (((mean - pm).abs() + (std - ps).abs()) / ps.clamp_min(1e-3)).mean(dim=1)
                for (mean, std), (pm, ps) in zip(moments, self.previous, strict=True)
            ]
            self.shift = moved if not self.shift else [a + b for a, b in zip(self.shift, moved, strict=True)]
            self.epochs += 1
        self.previous = moments
        if epoch % PROBE_EVERY:
            return
        net.backward(tape, torch.sigmoid(logits).sub_(y).div_(x.shape[1]))
        first = net.grads.clone()
        saved = net.params.clone()
        net.params.sub_(PROBE_STEP * first)
        logits, tape = net.forward(x, train=True, update_stats=False)
        net.backward(tape, torch.sigmoid(logits).sub_(y).div_(x.shape[1]))
        net.params.copy_(saved)
        change = net.per_model_norm(net.grads - first) / net.per_model_norm(first).clamp_min(1e-12)
        self.gradient = change if self.gradient is None else self.gradient + change
        self.probes += 1


def measure_shift(dataset: Dataset, slots: Sequence[Slot], config: TrainConfig) -> list[LayerShift]:
    """Both measures for every arm (the default training, with the probe attached), one value per resample."""
    per_arm: dict[tuple[VariantName, Scaling], dict[int, tuple[list[float], float]]] = {}
    for group, data in stacks(slots):
        probe = ShiftProbe()
        result = train_batched(data, VARIANTS, config, probe=probe)
        if probe.gradient is None or not probe.epochs:
            raise ValueError("internal covariate shift needs at least two epochs")
        for i, slot in enumerate(group):
            for variant in VARIANTS:
                m = result.index(variant, i)
                layers = [float(s[m]) / probe.epochs for s in probe.shift]
                per_arm.setdefault((variant, slot.scaling), {})[slot.resample] = (
                    layers,
                    float(probe.gradient[m]) / probe.probes,
                )
    out = []
    for (variant, scaling), by_resample in per_arm.items():
        rows = [by_resample[r] for r in sorted(by_resample)]
        n_layers = len(rows[0][0])
        out.append(
            LayerShift(
                variant=variant,
                scaling=scaling,
                input_shift=[stat([r[0][layer] for r in rows]) for layer in range(n_layers)],
                gradient_change=stat([r[1] for r in rows]),
            )
        )
    return out
