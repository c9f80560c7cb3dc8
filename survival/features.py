"""The feature spec and the one preprocessing function shared by trainer and service."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# The input rules live in survival/rules.py; re-exported here for the modules that read them with the features.
from survival.rules import AGE_MAX as AGE_MAX
from survival.rules import FARE_MAX as FARE_MAX
from survival.rules import PCLASS_VALUES as PCLASS_VALUES
from survival.rules import RULES
from survival.rules import FloatArray as FloatArray

# The experiment's inputs, in the column order the model sees them.
FEATURES: Final[tuple[str, ...]] = tuple(rule.column for rule in RULES.values())
PCLASS_INDEX: Final[int] = FEATURES.index("Pclass")
FARE_INDEX: Final[int] = FEATURES.index("Fare")
AGE_INDEX: Final[int] = FEATURES.index("Age")
# The columns a model may find missing (NaN) and fill with a fitted value.
FILLED_FIELDS: Final[dict[int, str]] = {FARE_INDEX: "fare", AGE_INDEX: "age"}


class Preprocessing(BaseModel):
    """Values fitted on the training split; stored in every checkpoint so serving repeats training exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: tuple[str, ...] = Field(default=FEATURES, description="Input columns, in model order.")
    age_fill: float = Field(description="Median Age of the training split; replaces a missing Age.")
    fare_fill: tuple[float, float, float] = Field(
        description="Median Fare of Pclass 1, 2 and 3 in the training split; replaces a missing Fare of that class."
    )
    standardize: bool = Field(default=False, description="Whether inputs are z-scored (off in the experiment).")
    mean: tuple[float, ...] | None = Field(default=None, description="Per-feature mean after filling (if standardize).")
    std: tuple[float, ...] | None = Field(default=None, description="Per-feature std after filling (if standardize).")


def fit_preprocessing(raw: FloatArray, *, standardize: bool = False) -> Preprocessing:
    """Fit the preprocessing values on raw training rows (columns FEATURES, NaN for a missing Fare or Age)."""
    age_fill = _median(raw[:, AGE_INDEX], "column Age: no known ages in the training split")
    fare_fill = tuple(
        _median(raw[raw[:, PCLASS_INDEX] == cls, FARE_INDEX], f"column Fare: no known fare of Pclass {cls} in training")
        for cls in PCLASS_VALUES
    )
    fitted = Preprocessing(age_fill=age_fill, fare_fill=fare_fill)
    if not standardize:
        return fitted
    filled = fill_missing(raw, fitted)
    std = filled.std(axis=0)
    # A constant column would divide by zero; leave it unscaled instead.
    std[std == 0] = 1.0
    return fitted.model_copy(
        update={
            "standardize": True,
            "mean": tuple(float(v) for v in filled.mean(axis=0)),
            "std": tuple(float(v) for v in std),
        }
    )


def _median(values: FloatArray, none_known: str) -> float:
    known = values[~np.isnan(values)]
    if known.size == 0:
        raise ValueError(f"{none_known}, cannot fit the median fill")
    return float(np.median(known))


def preprocess(raw: FloatArray, prep: Preprocessing) -> FloatArray:
    """Turn raw rows (columns FEATURES, NaN for a missing Fare or Age) into model inputs; a pure function."""
    if raw.ndim != 2 or raw.shape[1] != len(FEATURES):
        raise ValueError(f"expected an (n, {len(FEATURES)}) array of {', '.join(FEATURES)}, got shape {raw.shape}")
    out = fill_missing(raw, prep)
    if prep.standardize:
        if prep.mean is None or prep.std is None:
            raise ValueError("preprocessing says standardize but has no fitted mean/std")
        out = (out - np.asarray(prep.mean)) / np.asarray(prep.std)
    return out


def fill_missing(raw: FloatArray, prep: Preprocessing) -> FloatArray:
    """Raw rows with a missing Fare or Age filled as the models see them (before any scaling); a new array."""
    out = np.array(raw, dtype=np.float64, copy=True)
    # The common case, nothing to fill, with one ufunc call: a NaN anywhere makes the sum NaN (the rules admit only
    # finite values, so no inf - inf can fake one).
    if not math.isnan(np.add.reduce(out, axis=None)):
        return out
    ages = out[:, AGE_INDEX]
    ages[np.isnan(ages)] = prep.age_fill
    fares = out[:, FARE_INDEX]
    missing = np.isnan(fares)
    if missing.any():
        # Pclass is 1, 2 or 3 (the rules ensure it), so it indexes the per-class fills directly.
        classes = out[missing, PCLASS_INDEX].astype(np.int64)
        fares[missing] = np.asarray(prep.fare_fill)[classes - 1]
    return out


# Up to this many rows, filled_fields works in plain Python.
SMALL_ROWS: Final[int] = 8


def filled_fields(raw: FloatArray) -> dict[int, tuple[str, ...]]:
    """Row index -> the fields preprocessing fills in that row (a missing Fare or Age), for the rows with any."""
    if raw.shape[0] <= SMALL_ROWS:  # a few rows: plain Python beats NumPy's fixed cost per call
        small = {
            i: tuple(name for j, name in FILLED_FIELDS.items() if row[j] != row[j])
            for i, row in enumerate(raw.tolist())
        }
        return {i: fields for i, fields in small.items() if fields}  # NaN != NaN marks a missing value
    missing = np.isnan(raw[:, list(FILLED_FIELDS)])
    columns = list(FILLED_FIELDS.values())
    rows = np.flatnonzero(missing.any(axis=1))
    return {int(i): tuple(n for n, gap in zip(columns, missing[i], strict=True) if gap) for i in rows}
