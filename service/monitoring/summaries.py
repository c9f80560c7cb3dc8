"""What a report summarises, with NumPy only: a sample's quantiles, the served network's hidden pre-activations."""

from __future__ import annotations

from typing import Final

import numpy as np

from survival.features import FloatArray
from survival.served import Layers

QUANTILES: Final[tuple[float, ...]] = tuple(i / 20 for i in range(21))
QUANTILE_LABELS: Final[list[str]] = [f"{round(q * 100)}%" for q in QUANTILES]


def quantiles(values: FloatArray) -> list[float] | None:
    """The values at QUANTILES (None for an empty sample)."""
    return np.quantile(values, QUANTILES).tolist() if values.size else None


def hidden_preactivations(layers: Layers, features: FloatArray) -> list[FloatArray]:
    """Each hidden layer's pre-ReLU output of the served (folded) network: rows x units."""
    out = []
    h = features
    for weight, bias in layers[:-1]:
        pre = h @ weight + bias
        out.append(pre)
        h = np.maximum(pre, 0.0)
    return out
