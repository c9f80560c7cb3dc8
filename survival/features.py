"""The feature spec and the one preprocessing function shared by trainer and service."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

# The experiment's inputs, in the column order the model sees them.
FEATURES: Final[tuple[str, ...]] = ("Pclass", "Fare", "Age")
AGE_INDEX: Final[int] = FEATURES.index("Age")

FloatArray = npt.NDArray[np.float64]


class Preprocessing(BaseModel):
    """Values fitted on the training split; stored in every checkpoint so serving repeats training exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: tuple[str, ...] = Field(default=FEATURES, description="Input columns, in model order.")
    age_fill: float = Field(description="Median Age of the training split; replaces a missing Age.")
    standardize: bool = Field(default=False, description="Whether inputs are z-scored (off in the experiment).")
    mean: tuple[float, ...] | None = Field(default=None, description="Per-feature mean after filling (if standardize).")
    std: tuple[float, ...] | None = Field(default=None, description="Per-feature std after filling (if standardize).")


def fit_preprocessing(raw: FloatArray, *, standardize: bool = False) -> Preprocessing:
    """Fit the preprocessing values on raw training rows (columns FEATURES, NaN for a missing Age)."""
    ages = raw[:, AGE_INDEX]
    known = ages[~np.isnan(ages)]
    if known.size == 0:
        raise ValueError("column Age: no known ages in the training split, cannot fit the median fill")
    age_fill = float(np.median(known))
    if not standardize:
        return Preprocessing(age_fill=age_fill)
    filled = _fill_age(raw, age_fill)
    std = filled.std(axis=0)
    # A constant column would divide by zero; leave it unscaled instead.
    std[std == 0] = 1.0
    return Preprocessing(
        age_fill=age_fill,
        standardize=True,
        mean=tuple(float(v) for v in filled.mean(axis=0)),
        std=tuple(float(v) for v in std),
    )


def preprocess(raw: FloatArray, prep: Preprocessing) -> FloatArray:
    """Turn raw rows (columns FEATURES, NaN for a missing Age) into model inputs; a pure function."""
    if raw.ndim != 2 or raw.shape[1] != len(FEATURES):
        raise ValueError(f"expected an (n, {len(FEATURES)}) array of {', '.join(FEATURES)}, got shape {raw.shape}")
    out = _fill_age(raw, prep.age_fill)
    if prep.standardize:
        if prep.mean is None or prep.std is None:
            raise ValueError("preprocessing says standardize but has no fitted mean/std")
        out = (out - np.asarray(prep.mean)) / np.asarray(prep.std)
    return out


def _fill_age(raw: FloatArray, age_fill: float) -> FloatArray:
    out = np.array(raw, dtype=np.float64, copy=True)
    ages = out[:, AGE_INDEX]
    ages[np.isnan(ages)] = age_fill
    return out


# Input rules, shared by the trainer's CSV loader and the service's request validation.
PCLASS_VALUES: Final[tuple[int, ...]] = (1, 2, 3)
AGE_MAX: Final[float] = 120.0  # ages must lie in (0, AGE_MAX]
# The highest fare on record is 512.33; anything far above it is a unit or typing error.
FARE_MAX: Final[float] = 10_000.0
