"""SurvivalNet: the experiment's feed-forward network, with or without Batch Normalization."""

from __future__ import annotations

from typing import Final, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

VariantName = Literal["batchnorm", "plain"]
VARIANTS: Final[tuple[VariantName, ...]] = ("batchnorm", "plain")


class ModelConfig(BaseModel):
    """Everything needed to rebuild the architecture; stored in the checkpoint metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batchnorm: bool = Field(description="Linear -> BatchNorm1d -> ReLU when true, Linear -> ReLU when false.")
    n_features: int = Field(default=3, ge=1)
    hidden: tuple[int, ...] = Field(default=(16, 8), min_length=1, description="Hidden layer widths.")

    @classmethod
    def for_variant(cls, variant: VariantName, hidden: tuple[int, ...] = (16, 8), n_features: int = 3) -> ModelConfig:
        """The config of a named variant."""
        return cls(batchnorm=variant == "batchnorm", hidden=hidden, n_features=n_features)


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
