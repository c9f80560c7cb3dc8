"""Compute a trained variant's monitoring reference on its training split (the schema: survival/reference.py)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from survival.features import FloatArray, Preprocessing, preprocess
from survival.model import SurvivalNet
from survival.reference import Reference, feature_reference, layer_reference


def hidden_outputs(model: SurvivalNet, x: FloatArray) -> list[tuple[FloatArray, nn.BatchNorm1d | None]]:
    """Each hidden Linear layer's output on model inputs `x` (float64, eval mode) with the BatchNorm after it, if any.

    In eval mode, with the final weights: exactly what PreciseBN recomputes, and what the served (folded)
    network computes before each ReLU up to BatchNorm's per-unit affine map.
    """
    net = copy.deepcopy(model).to("cpu", torch.float64).eval()
    modules = list(net.net)
    found: list[tuple[FloatArray, nn.BatchNorm1d | None]] = []
    h = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        for i, module in enumerate(modules[:-1]):
            h = module(h)
            if isinstance(module, nn.Linear):
                after = modules[i + 1]
                found.append((h.numpy().copy(), after if isinstance(after, nn.BatchNorm1d) else None))
    return found


def bn_affine(bn: nn.BatchNorm1d | None, units: int) -> tuple[FloatArray, FloatArray]:
    """(scale, shift) of an eval-mode BatchNorm as a per-unit affine map; identity without one."""
    if bn is None:
        return np.ones(units), np.zeros(units)
    # SurvivalNet's BatchNorm tracks running statistics (the default), so both are tensors.
    assert bn.running_mean is not None
    assert bn.running_var is not None
    mean = bn.running_mean.detach().to(torch.float64).numpy()
    var = bn.running_var.detach().to(torch.float64).numpy()
    gamma = bn.weight.detach().to(torch.float64).numpy() if bn.weight is not None else np.ones(units)
    beta = bn.bias.detach().to(torch.float64).numpy() if bn.bias is not None else np.zeros(units)
    # The same map torch.nn.utils.fusion.fuse_linear_bn_eval folds into the Linear layer.
    scale = gamma / np.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def variant_reference(model: SurvivalNet, raw_train: FloatArray, prep: Preprocessing) -> Reference:
    """The reference of one trained variant from its raw training rows (NaN for a missing value)."""
    layers = []
    # Float64 inputs from the raw rows, as the service computes them (not the trainer's float32 tensors).
    for depth, (outputs, bn) in enumerate(hidden_outputs(model, preprocess(raw_train, prep)), start=1):
        scale, shift = bn_affine(bn, outputs.shape[1])
        layers.append(layer_reference(f"hidden{depth}", outputs, scale, shift))
    return Reference(features=feature_reference(raw_train), layers=layers)
