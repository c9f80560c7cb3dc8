"""The trainer's optimizer for a stack of models: one parameter buffer, the functional form of torch.optim."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.adam import adam as adam_update
from torch.optim.sgd import sgd as sgd_update

from training.loop import OptimizerName, make_optimizer


class StackOptimizer:
    """The trainer's optimizer (`make_optimizer`: same kernel, same settings) called through torch's functional form.

    `Optimizer.step` spends far longer on per-call bookkeeping than this model's arithmetic takes, so the
    stack keeps the optimizer state itself and calls `torch.optim.adam.adam` or `torch.optim.sgd.sgd` itself.
    """

    def __init__(
        self, name: OptimizerName, param: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float = 0.0
    ) -> None:
        self.name = name
        self.param, self.grad = param, grad
        # The settings make_optimizer gives a parameter of this dtype and device (it validates the fused kernel).
        probe = nn.Parameter(torch.zeros(1, dtype=param.dtype, device=param.device))
        self.group = {**make_optimizer(name, [probe], lr).param_groups[0]}
        if weight_decay:
            # The study's weight-decay arm: torch's own L2 term (added to the gradient), same kernel.
            self.group["weight_decay"] = weight_decay
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        # A fused Adam counts steps in a float32 tensor on the parameter's device, as torch.optim.Adam does.
        self.steps = torch.zeros((), dtype=torch.float32, device=param.device)

    @torch.no_grad()
    def step(self) -> None:
        """One update of every model from the gradients in `grad`."""
        g = self.group
        if self.name == "adam":
            beta1, beta2 = g["betas"]
            adam_update(
                [self.param],
                [self.grad],
                [self.exp_avg],
                [self.exp_avg_sq],
                [],
                [self.steps],
                foreach=g["foreach"],
                fused=g["fused"],
                amsgrad=g["amsgrad"],
                beta1=beta1,
                beta2=beta2,
                lr=g["lr"],
                weight_decay=g["weight_decay"],
                eps=g["eps"],
                maximize=g["maximize"],
            )
        else:
            sgd_update(
                [self.param],
                [self.grad],
                [None],
                foreach=g["foreach"],
                fused=g["fused"],
                weight_decay=g["weight_decay"],
                momentum=g["momentum"],
                lr=g["lr"],
                dampening=g["dampening"],
                nesterov=g["nesterov"],
                maximize=g["maximize"],
            )
