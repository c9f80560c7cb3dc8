"""SurvivalNet: the experiment's feed-forward network, with or without Batch Normalization."""

from __future__ import annotations

import torch
from torch import nn

# Re-exported: the trainer imports the variants from here; the service imports survival.variants (no torch).
from survival.variants import VARIANTS as VARIANTS
from survival.variants import ModelConfig as ModelConfig
from survival.variants import VariantName as VariantName


class SurvivalNet(nn.Module):
    """Hidden blocks of Linear -> [BatchNorm1d] -> ReLU, then Linear -> 1 logit."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.n_features
        for hidden in config.hidden:
            layers.append(nn.Linear(width, hidden))
            # BN sits between the affine map and the non-linearity, as in Ioffe & Szegedy.
            # It holds no random parameters, so with the same seed both variants draw
            # identical Linear weights.
            if config.batchnorm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.ReLU())
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Survival logits, shape (n,)."""
        out: torch.Tensor = self.net(x)
        return out.squeeze(-1)


def build_model(config: ModelConfig, seed: int) -> SurvivalNet:
    """A freshly initialised model whose weights depend only on `seed` and the architecture."""
    torch.manual_seed(seed)
    return SurvivalNet(config)
