"""The training loop: one variant, seeded init and batch order, per-epoch curves in eval() mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from survival.checkpoint import Curves
from survival.model import ModelConfig, SurvivalNet, VariantName, build_model

OptimizerName = Literal["adam", "sgd"]
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by both variants of a run."""

    epochs: int = 200
    learning_rate: float = 1e-3
    batch_size: int = 32
    hidden: tuple[int, ...] = (16, 8)
    seed: int = 0
    val_fraction: float = 0.2
    standardize: bool = False
    optimizer: OptimizerName = "adam"
    device: str = "cpu"
    dtype: torch.dtype = field(default=torch.float32)


def batch_order(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """This epoch's mini-batches: a seeded permutation cut into `batch_size` chunks.

    A trailing chunk of one row is merged into the previous one: BatchNorm cannot
    compute a variance from a single row in training mode.
    """
    perm = torch.randperm(n, generator=generator)
    batches = list(torch.split(perm, batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def make_optimizer(name: OptimizerName, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimizer of a run; Adam by default as in the experiment, SGD for the learning-rate sweep."""
    if name == "adam":
        # The fused kernel is the same algorithm in one call per step: at this model size the
        # per-parameter Python dispatch of the default implementation dominates a step.
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.SGD(params, lr=lr)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(BCE loss, accuracy at 0.5) of `model` in eval() mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    logits = model(x)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y).item()
    accuracy = ((logits >= 0) == (y >= 0.5)).to(torch.float64).mean().item()
    model.train(was_training)
    return loss, accuracy


def train_variant(
    variant: VariantName,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
) -> tuple[SurvivalNet, Curves]:
    """Train one variant; both variants of a run get the same initial Linear weights and batch order."""
    model_config = ModelConfig.for_variant(variant, hidden=config.hidden, n_features=x_train.shape[1])
    model = build_model(model_config, config.seed).to(device=x_train.device, dtype=config.dtype)
    optimizer = make_optimizer(config.optimizer, list(model.parameters()), config.learning_rate)
    # The batch order has its own generator so it is the same for both variants, whatever the
    # model's construction or the device consumed from the global RNG.
    generator = torch.Generator().manual_seed(config.seed)
    curves = Curves()
    n = x_train.shape[0]
    for epoch in range(config.epochs):
        model.train()
        for idx in batch_order(n, config.batch_size, generator):
            if idx.device != x_train.device:
                idx = idx.to(x_train.device)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.binary_cross_entropy_with_logits(model(x_train[idx]), y_train[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        train_loss, train_acc = evaluate(model, x_train, y_train)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        curves.train_loss.append(train_loss)
        curves.train_accuracy.append(train_acc)
        curves.val_loss.append(val_loss)
        curves.val_accuracy.append(val_acc)
        if on_epoch is not None:
            on_epoch(epoch, {"loss": train_loss, "acc": train_acc, "val_loss": val_loss, "val_acc": val_acc})
    model.eval()
    return model, curves
