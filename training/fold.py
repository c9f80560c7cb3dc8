"""Fold a trained SurvivalNet into its served form, and build what `save_run` writes for it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from survival.model import SurvivalNet
from survival.runs import VariantPayload
from survival.served import Layers, layer_tensors
from survival.torch_checkpoint import state_arrays


def fold_layers(model: SurvivalNet) -> Layers:
    """(weight (in, out), bias) per affine layer, with each eval-mode BatchNorm folded into its Linear.

    In eval() a BatchNorm layer is a fixed affine map built from its running statistics, so
    Linear -> BN equals one Linear; what remains is affine -> ReLU -> ... -> affine. The fold is
    computed in float64 so the served form equals the float64 torch model to rounding.
    """
    if model.training:
        raise ValueError("fold_layers needs a model in eval() mode (BN must use its running statistics)")
    modules = list(copy.deepcopy(model).to("cpu", torch.float64).net)
    # Guard the fold against a change of SurvivalNet: it knows Linear, BatchNorm1d (after a Linear) and ReLU only.
    known = (nn.Linear, nn.BatchNorm1d, nn.ReLU)
    if not all(isinstance(m, known) for m in modules) or not isinstance(modules[-1], nn.Linear):
        raise ValueError(f"fold_layers does not know this architecture: {[type(m).__name__ for m in modules]}")
    layers: Layers = []
    with torch.no_grad():
        for i, module in enumerate(modules):
            if isinstance(module, nn.BatchNorm1d) and not isinstance(modules[i - 1], nn.Linear):
                raise ValueError("fold_layers: a BatchNorm1d must follow a Linear layer")
            if not isinstance(module, nn.Linear):
                continue
            after = modules[i + 1] if i + 1 < len(modules) else None
            linear = fuse_linear_bn_eval(module, after) if isinstance(after, nn.BatchNorm1d) else module
            layers.append((linear.weight.numpy().T.copy(), linear.bias.numpy().copy()))
    return layers


def variant_payload(
    model: SurvivalNet, metadata: Mapping[str, Any], artifacts: Mapping[str, bytes] | None = None
) -> VariantPayload:
    """The weights, the folded served form, metadata and artifacts of one trained variant, ready for save_run."""
    return VariantPayload(
        weights=state_arrays(model),
        served=layer_tensors(fold_layers(model)),
        metadata=metadata,
        artifacts=artifacts or {},
    )
