"""Many seeded models trained as one computation: a model dimension through every tensor.

Model ``m`` of a stack is a (variant, slot) pair; a slot is one prepared split (its seed gives the initial weights
and the batch order, shared by the slot's variants). Its Linear layers are slices ``[m]`` of batched weights
``(M, in, out)`` applied with ``torch.baddbmm``; the batchnorm models come first, and their BatchNorm runs as
one ``batch_norm`` call whose channels are (model, feature) pairs, which is exactly ``nn.BatchNorm1d``'s
per-feature computation (same kernel, same running-statistics update) for each model. The loss is the sum over
models of each model's mean BCE, so every model's gradient is its own (the backward pass is written out with
the kernels autograd would use); Adam and SGD act elementwise, so one optimizer over the stacked parameters
takes the same steps as one optimizer per model. Each slot draws its batch order from its own generator, as
`training.loop.train_variant` does. `tests/training/test_batched.py` checks the result against the single-run trainer in
float64. Dropout (a study arm only; SurvivalNet has none) drops hidden activations after each ReLU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from survival.checkpoint import Curves
from survival.model import ModelConfig, SurvivalNet, VariantName, build_model
from training.loop import TrainConfig, batch_order
from training.stack_optimizer import StackOptimizer

# (variant, slot): which architecture, and which prepared split (and seed) it trains on.
ModelKey = tuple[VariantName, int]
CURVE_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
# Called after every epoch's updates with the stack, each model's training inputs and labels, and the epoch (0-based).
Probe = Callable[["BatchedNet", torch.Tensor, torch.Tensor, int], None]


@dataclass(frozen=True)
class SeedData:
    """Prepared splits ("slots"), stacked: x (S, n, features), y (S, n); every slot has the same n.

    `seeds[s]` seeds slot s's initial weights and batch order; two slots may share a seed (the same seed on raw
    and on standardized inputs, or the folds of one repetition of k-fold).
    """

    seeds: tuple[int, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


@dataclass(frozen=True)
class BatchedResult:
    """Curves (4, M, epochs) in float64 on the CPU, validation logits (M, n_val) after the last epoch and after
    each epoch asked for in `snapshots` (1-based epoch counts), and the trained stack."""

    keys: tuple[ModelKey, ...]
    curves: torch.Tensor
    val_logits: torch.Tensor
    net: BatchedNet
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)

    def index(self, variant: VariantName, slot: int) -> int:
        """Position of a (variant, slot) model in the stack."""
        return self.keys.index((variant, slot))

    def model_curves(self, m: int) -> Curves:
        """One model's curves, in the trainer's format."""
        values = self.curves[:, m, :].tolist()
        return Curves(**dict(zip(CURVE_NAMES, values, strict=True)))


@dataclass(frozen=True)
class _Tape:
    """What the backward pass needs from a forward pass in training mode."""

    inputs: list[torch.Tensor]  # the input of every Linear layer, (M, rows, in)
    bn_inputs: list[torch.Tensor]  # per hidden layer, the batchnorm block's input (rows, k * width)
    bn_saved: list[tuple[torch.Tensor, torch.Tensor]]  # per hidden layer, the batch mean and 1/std
    masks: list[torch.Tensor]  # per hidden layer, the dropout mask (scaled), when dropout is on


class BatchedNet:
    """M SurvivalNets of one width, initialised exactly as `build_model(config, seed)` initialises each.

    The forward and backward passes are written out (Linear -> [BatchNorm] -> ReLU blocks, then Linear) with the
    kernels autograd would call for a SurvivalNet: at this size autograd's bookkeeping, not arithmetic, was most
    of a step's time.
    """

    def __init__(
        self,
        models: Sequence[tuple[VariantName, int]],
        hidden: tuple[int, ...],
        n_features: int,
        dtype: torch.dtype,
        device: str,
    ) -> None:
        """`models` lists each model's (variant, initial-weight seed), batchnorm models first."""
        # Batchnorm models first, so their activations are one contiguous block of the stack.
        if list(models) != sorted(models, key=lambda k: k[0] != "batchnorm"):
            raise ValueError("a stack lists its batchnorm models first")
        self.keys = tuple(models)
        self.n_bn = sum(1 for variant, _ in self.keys if variant == "batchnorm")
        self.hidden = hidden
        refs = [build_model(ModelConfig.for_variant(v, hidden=hidden, n_features=n_features), s) for v, s in self.keys]
        for ref in refs:
            _check_architecture(ref)
        linears = [[mod for mod in ref.net if isinstance(mod, nn.Linear)] for ref in refs]
        norms = [[mod for mod in ref.net if isinstance(mod, nn.BatchNorm1d)] for ref in refs[: self.n_bn]]
        widths = (n_features, *hidden, 1)
        n_models, n_layers = len(self.keys), len(widths) - 1
        shapes: list[tuple[int, ...]] = [(n_models, widths[i], widths[i + 1]) for i in range(n_layers)]
        shapes += [(n_models, 1, widths[i + 1]) for i in range(n_layers)]
        shapes += [(self.n_bn * h,) for h in hidden for _ in (0, 1)] if self.n_bn else []
        # Parameters are views of one buffer and gradients views of another, so the optimizer updates one tensor
        # per step: at these sizes its per-tensor bookkeeping would cost more than the arithmetic.
        self.params = torch.zeros(sum(math.prod(s) for s in shapes), dtype=dtype, device=device)
        self.grads = torch.zeros_like(self.params)
        self.shapes = shapes
        views, grads = _views(self.params, shapes), _views(self.grads, shapes)
        self.weights, self.biases = views[:n_layers], views[n_layers : 2 * n_layers]
        self.weight_grads, self.bias_grads = grads[:n_layers], grads[n_layers : 2 * n_layers]
        self.bn_weights, self.bn_biases = views[2 * n_layers :: 2], views[2 * n_layers + 1 :: 2]
        self.bn_weight_grads, self.bn_bias_grads = grads[2 * n_layers :: 2], grads[2 * n_layers + 1 :: 2]
        self.running_mean = [torch.zeros(self.n_bn * h, dtype=dtype, device=device) for h in hidden]
        self.running_var = [torch.ones(self.n_bn * h, dtype=dtype, device=device) for h in hidden]
        self.bn_batches = 0
        self.momentum, self.eps = 0.1, 1e-5
        self.dropout_generator: torch.Generator | None = None
        with torch.no_grad():
            for layer in range(n_layers):
                self.weights[layer].copy_(torch.stack([lin[layer].weight.T for lin in linears]))
                self.biases[layer].copy_(torch.stack([lin[layer].bias for lin in linears]).unsqueeze(1))
            for layer in range(len(hidden) if self.n_bn else 0):
                bns = [norm[layer] for norm in norms]
                if bns[0].momentum is None:
                    raise ValueError("BatchNorm with momentum=None (a cumulative average) is not implemented here")
                self.momentum, self.eps = bns[0].momentum, bns[0].eps
                self.bn_weights[layer].copy_(torch.cat([bn.weight for bn in bns]))
                self.bn_biases[layer].copy_(torch.cat([bn.bias for bn in bns]))
                self.running_mean[layer].copy_(torch.cat([_buffer(bn, "running_mean") for bn in bns]))
                self.running_var[layer].copy_(torch.cat([_buffer(bn, "running_var") for bn in bns]))

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, *, train: bool, dropout: float = 0.0, update_stats: bool = True
    ) -> tuple[torch.Tensor, _Tape]:
        """Logits (M, rows) for inputs (M, rows, features); `train` uses batch statistics as `model.train()` does.

        `dropout` (training mode only) zeroes each hidden activation with that probability, scaling the rest as
        `nn.Dropout` does; `update_stats=False` leaves the running statistics untouched (for measurements).
        """
        tape = _Tape(inputs=[], bn_inputs=[], bn_saved=[], masks=[])
        k, h = self.n_bn, x
        for layer, width in enumerate(self.hidden):
            tape.inputs.append(h)
            z = torch.baddbmm(self.biases[layer], h, self.weights[layer])
            if k:
                rows = z.shape[1]
                # (k, rows, width) -> (rows, k * width): channel j * width + c is feature c of model j, so one
                # batch-norm call normalises every model's features with that model's own batch statistics.
                block = z[:k].transpose(0, 1).reshape(rows, k * width)
                if block.data_ptr() == z.data_ptr():
                    # With one batchnorm model the reshape is a view of z, which is overwritten below;
                    # the backward pass needs the input as it was.
                    block = block.clone()
                stats = (self.running_mean[layer], self.running_var[layer])
                if not update_stats:
                    stats = (stats[0].clone(), stats[1].clone())
                normed, mean, invstd = torch.native_batch_norm(
                    block, self.bn_weights[layer], self.bn_biases[layer], *stats, train, self.momentum, self.eps
                )
                z[:k] = normed.view(rows, k, width).transpose(0, 1)
                tape.bn_inputs.append(block)
                tape.bn_saved.append((mean, invstd))
            h = z.relu_()
            if train and dropout > 0:
                assert self.dropout_generator is not None, "a stack trained with dropout has its own generator"
                keep = torch.rand(h.shape, generator=self.dropout_generator, dtype=h.dtype).to(h.device) >= dropout
                mask = keep.to(h.dtype).div_(1 - dropout)
                tape.masks.append(mask)
                h = h * mask
        tape.inputs.append(h)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1]).squeeze(-1), tape

    @torch.no_grad()
    def backward(self, tape: _Tape, grad_logits: torch.Tensor) -> None:
        """Write every parameter's gradient into `grads` (overwriting it) from d loss / d logits (M, rows)."""
        k, g = self.n_bn, grad_logits.unsqueeze(-1)
        for layer in reversed(range(len(self.weights))):
            torch.bmm(tape.inputs[layer].transpose(1, 2), g, out=self.weight_grads[layer])
            torch.sum(g, dim=1, keepdim=True, out=self.bias_grads[layer])
            if layer == 0:
                break
            g = torch.bmm(g, self.weights[layer].transpose(1, 2))
            if tape.masks:
                g = g * tape.masks[layer - 1]
            # ReLU's backward as autograd computes it: from the ReLU's output (a dropped unit's gradient is 0
            # already, so the dropped output serves as well).
            g = torch.ops.aten.threshold_backward(g, tape.inputs[layer], 0)
            if k:
                rows, width = g.shape[1], g.shape[2]
                mean, invstd = tape.bn_saved[layer - 1]
                block_grad, weight_grad, bias_grad = torch.ops.aten.native_batch_norm_backward(
                    g[:k].transpose(0, 1).reshape(rows, k * width),
                    tape.bn_inputs[layer - 1],
                    self.bn_weights[layer - 1],
                    self.running_mean[layer - 1],
                    self.running_var[layer - 1],
                    mean,
                    invstd,
                    True,
                    self.eps,
                    [True, True, True],
                )
                self.bn_weight_grads[layer - 1].copy_(weight_grad)
                self.bn_bias_grads[layer - 1].copy_(bias_grad)
                g[:k] = block_grad.view(rows, k, width).transpose(0, 1)

    def per_model_norm(self, flat: torch.Tensor) -> torch.Tensor:
        """The Euclidean norm, per model (M,), of a vector laid out like `params` (e.g. a gradient)."""
        n_layers = len(self.weights)
        squares = torch.zeros(len(self.keys), dtype=flat.dtype, device=flat.device)
        for i, view in enumerate(_views(flat, self.shapes)):
            if i < 2 * n_layers:
                squares += view.square().sum(dim=(1, 2))
            else:  # a batchnorm parameter: (n_bn * width,), the first n_bn models' features in order
                squares[: self.n_bn] += view.view(self.n_bn, -1).square().sum(dim=1)
        return squares.sqrt()

    def to_module(self, m: int) -> SurvivalNet:
        """Model `m` as a SurvivalNet in eval() mode, on the CPU, with the stack's dtype."""
        variant, _ = self.keys[m]
        model = SurvivalNet(ModelConfig.for_variant(variant, hidden=self.hidden, n_features=self.weights[0].shape[1]))
        model.to(self.params.dtype)
        linears = [mod for mod in model.net if isinstance(mod, nn.Linear)]
        norms = [mod for mod in model.net if isinstance(mod, nn.BatchNorm1d)]
        with torch.no_grad():
            for layer, lin in enumerate(linears):
                lin.weight.copy_(self.weights[layer][m].T)
                lin.bias.copy_(self.biases[layer][m, 0])
            for layer, bn in enumerate(norms):
                rows = slice(m * self.hidden[layer], (m + 1) * self.hidden[layer])
                bn.weight.copy_(self.bn_weights[layer][rows])
                bn.bias.copy_(self.bn_biases[layer][rows])
                _buffer(bn, "running_mean").copy_(self.running_mean[layer][rows])
                _buffer(bn, "running_var").copy_(self.running_var[layer][rows])
                _buffer(bn, "num_batches_tracked").fill_(self.bn_batches)
        return model.eval()


def _check_architecture(model: SurvivalNet) -> None:
    """Refuse a SurvivalNet whose layers differ from what the written-out passes compute."""
    block = [nn.Linear, nn.BatchNorm1d, nn.ReLU] if model.config.batchnorm else [nn.Linear, nn.ReLU]
    expected = block * len(model.config.hidden) + [nn.Linear]
    actual = [type(mod) for mod in model.net]
    if actual != expected:
        names = [t.__name__ for t in actual]
        raise ValueError(f"SurvivalNet's layers {names} are not what training/batched.py implements")


def _views(flat: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    out, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[offset : offset + size].view(shape))
        offset += size
    return out


def _buffer(bn: nn.BatchNorm1d, name: str) -> torch.Tensor:
    value = getattr(bn, name)
    assert isinstance(value, torch.Tensor)
    return value


def train_batched(
    data: SeedData,
    variants: Sequence[VariantName],
    config: TrainConfig,
    on_epoch: Callable[[int], object] | None = None,
    *,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
    snapshots: Sequence[int] = (),
    probe: Probe | None = None,
) -> BatchedResult:
    """Train every (variant, slot) model as `train_variant` trains it, all in one computation.

    `dropout` and `weight_decay` (Adam's or SGD's L2 term) are the study's regularization arms; at 0 (the
    default) the models are exactly the trainer's.
    """
    if not data.seeds:
        raise ValueError("no seeds to train")
    device, dtype = config.device, config.dtype
    n_train, n_features = data.x_train.shape[1], data.x_train.shape[2]
    keys = sorted(((v, slot) for v in variants for slot in range(len(data.seeds))), key=lambda k: k[0] != "batchnorm")
    net = BatchedNet([(v, data.seeds[slot]) for v, slot in keys], config.hidden, n_features, dtype, device)
    if dropout > 0:
        net.dropout_generator = torch.Generator().manual_seed(data.seeds[0])
    optimizer = StackOptimizer(config.optimizer, net.params, net.grads, config.learning_rate, weight_decay)
    slot_of = torch.tensor([slot for _, slot in keys], device=device)
    x_train = data.x_train.to(device, dtype)[slot_of]
    y_train = data.y_train.to(device, dtype)[slot_of]
    x_eval = torch.cat([data.x_train, data.x_val], dim=1).to(device, dtype)[slot_of]
    y_eval = torch.cat([data.y_train, data.y_val], dim=1).to(device, dtype)[slot_of]
    generators = [torch.Generator().manual_seed(s) for s in data.seeds]
    curves = torch.empty(config.epochs, 4, len(keys), dtype=torch.float64, device=device)
    logits = torch.empty(0)
    kept: dict[int, torch.Tensor] = {}
    for epoch in range(config.epochs):
        orders = [batch_order(n_train, config.batch_size, g) for g in generators]
        # Every slot has n_train rows, so batch_order cuts every slot's permutation at the same places.
        sizes = [len(batch) for batch in orders[0]]
        perm = torch.stack([torch.cat(order) for order in orders]).to(device)[slot_of]
        xs = x_train.gather(1, perm.unsqueeze(-1).expand(-1, -1, n_features))
        ys = y_train.gather(1, perm)
        start = 0
        for size in sizes:
            batch_logits, tape = net.forward(xs[:, start : start + size], train=True, dropout=dropout)
            # The loss is the sum over models of each model's mean BCE over its batch, so model m's parameters
            # get model m's gradient only: d loss / d logit = (sigmoid(logit) - label) / batch size.
            grad = torch.sigmoid(batch_logits).sub_(ys[:, start : start + size]).div_(size)
            net.backward(tape, grad)
            optimizer.step()
            start += size
        net.bn_batches += len(sizes)
        if probe is not None:
            probe(net, x_train, y_train, epoch)
        # The curves, as `training.loop.evaluate` computes them: eval() mode, after the epoch's updates.
        with torch.no_grad():
            logits, _ = net.forward(x_eval, train=False)
            losses = nn.functional.binary_cross_entropy_with_logits(logits, y_eval, reduction="none")
            correct = ((logits >= 0) == (y_eval >= 0.5)).to(torch.float64)
            curves[epoch] = torch.stack(
                [
                    losses[:, :n_train].mean(1).to(torch.float64),
                    correct[:, :n_train].mean(1),
                    losses[:, n_train:].mean(1).to(torch.float64),
                    correct[:, n_train:].mean(1),
                ]
            )
        if epoch + 1 in snapshots:
            kept[epoch + 1] = logits[:, n_train:].cpu()
        if on_epoch is not None:
            on_epoch(epoch)
    return BatchedResult(
        keys=tuple(keys),
        curves=curves.permute(1, 2, 0).cpu(),
        val_logits=logits[:, n_train:].cpu(),
        net=net,
        snapshots=kept,
    )
