"""Internal covariate shift as Santurkar et al. (2018, "How Does Batch Normalization Help Optimization?") define
it, beside the drift of the layers' input distributions and gradient predictiveness, on the study's default arms.

- ICS (their definition 2.1): at step t on batch (x_t, y_t), G = the gradient of layer i's weights, and G' = the
  same gradient, same batch, after the layers below i take the optimizer's update of step t (layers i and above
  unchanged). Reported per layer: ||G - G'|| and cos(G, G'), averaged over the first step of every
  `ICS_EVERY`-th epoch. Layer 1 has nothing below it, so the measured layers are hidden layer 2 .. the output
  layer.
- Input-distribution drift: after every epoch, the mean and std of each layer's inputs (the previous block's
  activations) over the training split, in training mode; per model, the mean over units and epochs of
  (|change of the mean| + |change of the std|) / the previous std. This is what Ioffe & Szegedy describe as
  covariate shift, not Santurkar's measure.
- Gradient predictiveness: every `PROBE_EVERY` epochs, the full-batch gradient g at w and g' at w - 0.1 g; per
  model, the mean of ||g - g'|| / ||g||.

The arms train exactly as `train_batched` trains them (same initial weights, batch order and optimizer steps; a
test checks the final weights are equal): measuring only reads, and the weights are restored bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import torch

from survival.model import VARIANTS, VariantName
from survival.study import Scaling
from survival.study_parts import LayerDrift, LayerIcs, LayerShift
from training.batched import BatchedNet, SeedData
from training.data import Dataset
from training.loop import TrainConfig, batch_order
from training.stack_optimizer import StackOptimizer
from training.study_data import Slot, stacks
from training.study_stats import stat

PROBE_EVERY: Final[int] = 10
PROBE_STEP: Final[float] = 0.1
ICS_EVERY: Final[int] = 10


def layer_name(index: int, n_linear: int) -> str:
    """The name of Linear layer `index` (0-based) of `n_linear`: "hidden layer 1", ..., "output layer"."""
    return "output layer" if index == n_linear - 1 else f"hidden layer {index + 1}"


class ShiftProbe:
    """Accumulates the input drift and gradient predictiveness for every model of one stack, once per epoch."""

    def __init__(self) -> None:
        self.previous: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.shift: list[torch.Tensor] = []  # per layer with inputs from a hidden block, the summed per-model drift
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


def below_masks(net: BatchedNet) -> list[torch.Tensor]:
    """Per Linear layer i >= 1, a mask over `net.params` of every parameter of the layers below it."""
    saved, masks = net.params.clone(), []
    with torch.no_grad():
        for i in range(1, len(net.weights)):
            net.params.zero_()
            for j in range(i):
                for view in (net.weights[j], net.biases[j], *([net.bn_weights[j], net.bn_biases[j]] * bool(net.n_bn))):
                    view.fill_(1)
            masks.append(net.params != 0)
        net.params.copy_(saved)
    return masks


class IcsMeter:
    """Santurkar et al.'s ICS per layer i >= 1, summed over the measured steps, for every model of a stack."""

    def __init__(self, net: BatchedNet) -> None:
        self.masks = below_masks(net)
        n_models = len(net.keys)
        self.l2 = torch.zeros(len(self.masks), n_models, dtype=torch.float64)
        self.cosine = torch.zeros_like(self.l2)
        self.steps = 0

    @torch.no_grad()
    def measure(self, net: BatchedNet, before: torch.Tensor, grads: list[torch.Tensor], x: torch.Tensor,
                y: torch.Tensor) -> None:  # fmt: skip
        """Compare each layer's gradient `grads[i]` at `before` with its gradient once the layers below moved."""
        after = net.params.clone()
        for i, mask in enumerate(self.masks, start=1):
            net.params.copy_(torch.where(mask, after, before))
            logits, tape = net.forward(x, train=True, update_stats=False)
            net.backward(tape, torch.sigmoid(logits).sub_(y).div_(x.shape[1]))
            g, g2 = grads[i].flatten(1).double(), net.weight_grads[i].flatten(1).double()
            self.l2[i - 1] += (g2 - g).norm(dim=1).cpu()
            self.cosine[i - 1] += ((g * g2).sum(1) / (g.norm(dim=1) * g2.norm(dim=1)).clamp_min(1e-300)).cpu()
        net.params.copy_(after)
        self.steps += 1


def train_measuring(
    data: SeedData, config: TrainConfig, drift: ShiftProbe
) -> tuple[BatchedNet, list[tuple[VariantName, int]], IcsMeter]:
    """Train both variants on every slot as `train_batched` does, measuring ICS and calling `drift` each epoch;
    returns the stack, its models' (variant, slot) keys in order, and the ICS meter."""
    device, dtype = config.device, config.dtype
    n_train, n_features = data.x_train.shape[1], data.x_train.shape[2]
    keys = sorted(((v, s) for v in VARIANTS for s in range(len(data.seeds))), key=lambda k: k[0] != "batchnorm")
    net = BatchedNet([(v, data.seeds[s]) for v, s in keys], config.hidden, n_features, dtype, device)
    optimizer = StackOptimizer(config.optimizer, net.params, net.grads, config.learning_rate)
    meter = IcsMeter(net)
    slot_of = torch.tensor([s for _, s in keys], device=device)
    x_train, y_train = data.x_train.to(device, dtype)[slot_of], data.y_train.to(device, dtype)[slot_of]
    generators = [torch.Generator().manual_seed(s) for s in data.seeds]
    for epoch in range(config.epochs):
        orders = [batch_order(n_train, config.batch_size, g) for g in generators]
        perm = torch.stack([torch.cat(order) for order in orders]).to(device)[slot_of]
        xs = x_train.gather(1, perm.unsqueeze(-1).expand(-1, -1, n_features))
        ys = y_train.gather(1, perm)
        start = 0
        for step, size in enumerate(len(batch) for batch in orders[0]):
            xb, yb = xs[:, start : start + size], ys[:, start : start + size]
            logits, tape = net.forward(xb, train=True)
            net.backward(tape, torch.sigmoid(logits).sub_(yb).div_(size))
            if step == 0 and epoch % ICS_EVERY == 0:
                before, grads = net.params.clone(), [g.clone() for g in net.weight_grads]
                optimizer.step()
                meter.measure(net, before, grads, xb, yb)
            else:
                optimizer.step()
            start += size
        net.bn_batches += len(orders[0])
        drift(net, x_train, y_train, epoch)
    return net, keys, meter


def measure_shift(dataset: Dataset, slots: Sequence[Slot], config: TrainConfig) -> list[LayerShift]:
    """Every measure for every arm (the default training, measured on the way), one value per resample."""
    rows: dict[tuple[VariantName, Scaling], dict[int, tuple[list[float], list[float], list[float], float]]] = {}
    n_linear = len(config.hidden) + 1
    for group, data in stacks(slots):
        drift = ShiftProbe()
        _, keys, meter = train_measuring(data, config, drift)
        if drift.gradient is None or not drift.epochs:
            raise ValueError("internal covariate shift needs at least two epochs")
        for i, slot in enumerate(group):
            for variant in VARIANTS:
                m = keys.index((variant, i))
                rows.setdefault((variant, slot.scaling), {})[slot.resample] = (
                    [float(s[m]) / drift.epochs for s in drift.shift],
                    [float(v) / meter.steps for v in meter.l2[:, m]],
                    [float(v) / meter.steps for v in meter.cosine[:, m]],
                    float(drift.gradient[m]) / drift.probes,
                )
    out = []
    for (variant, scaling), by_resample in rows.items():
        ordered = [by_resample[r] for r in sorted(by_resample)]
        names = [layer_name(i, n_linear) for i in range(1, n_linear)]
        out.append(
            LayerShift(
                variant=variant,
                scaling=scaling,
                ics=[LayerIcs(layer=name, l2=stat([r[1][k] for r in ordered]), cosine=stat([r[2][k] for r in ordered]))
                     for k, name in enumerate(names)],
                input_drift=[LayerDrift(layer=name, drift=stat([r[0][k] for r in ordered]))
                             for k, name in enumerate(names)],
                gradient_change=stat([r[3] for r in ordered]),
            )
        )  # fmt: skip
    return out
