"""The two variants and the architecture config: plain data, importable without torch (the service needs it)."""

from __future__ import annotations

from itertools import pairwise
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

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

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of each affine layer, hidden layers first, then the one-logit output."""
        widths = [self.n_features, *self.hidden, 1]
        return list(pairwise(widths))
