"""The training split's reference for input monitoring: its schema and the torch-free parts of computing it.

The trainer writes one ``reference.json`` per variant with every run (the same atomic write as the weights),
so a hot swap swaps the reference with the models. It holds what the service's drift tests compare with:

- per input feature, what its test needs: the sorted known values of Fare and Age (two-sample
  Kolmogorov-Smirnov), the Pclass counts (chi-square), the missing-age count (two-proportion test);
- per hidden layer, the exact mean and variance of the layer's Linear output (for the BatchNorm variant:
  BatchNorm's input) over the training split, computed with the final weights in eval mode (what PreciseBN
  does; BN's running averages lag behind the final weights), plus the eval-mode BatchNorm's per-unit affine
  map (``scale``, ``shift``) that turns that input into the folded layer's pre-activation the service
  computes (1 and 0 without BatchNorm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from survival.features import FEATURES, PCLASS_VALUES, FloatArray
from survival.jsonfile import read_json_model

REFERENCE_FILE: Final[str] = "reference.json"
REFERENCE_FORMAT_VERSION: Final[int] = 1
# More known values than this are stored as this many evenly spaced quantiles (bounded file size, whatever
# the training set); the Titanic training split (712 rows) is stored whole, so its tests are exact.
SAMPLE_MAX: Final[int] = 10_000
PCLASS_INDEX: Final[int] = FEATURES.index("Pclass")
FARE_INDEX: Final[int] = FEATURES.index("Fare")
AGE_INDEX: Final[int] = FEATURES.index("Age")

Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericReference(_Frozen):
    """A numeric feature over the training split: how many rows lacked it, and its known values, sorted."""

    n_missing: int = Field(ge=0)
    n_known: int = Field(ge=0, description="Known values in the split (may exceed len(values) when quantiles).")
    values: list[Finite] = Field(description="The known values sorted, or SAMPLE_MAX evenly spaced quantiles.")
    quantiles: bool = Field(default=False, description="Whether `values` are quantiles rather than the values.")

    @model_validator(mode="after")
    def _check(self) -> NumericReference:
        if len(self.values) > SAMPLE_MAX or len(self.values) > self.n_known:
            raise ValueError(f"values: {len(self.values)} values for {self.n_known} known (at most {SAMPLE_MAX})")
        if any(b < a for a, b in zip(self.values, self.values[1:], strict=False)):
            raise ValueError("values: must be sorted")
        return self


class FeatureReference(_Frozen):
    """The input features over the training split."""

    n_rows: int = Field(ge=1)
    pclass_counts: dict[str, int] = Field(description="Rows per ticket class ('1', '2', '3').")
    fare: NumericReference
    age: NumericReference

    @model_validator(mode="after")
    def _check(self) -> FeatureReference:
        if set(self.pclass_counts) != {str(v) for v in PCLASS_VALUES} or sum(self.pclass_counts.values()) != (
            self.n_rows
        ):
            raise ValueError(f"pclass_counts: must count each of {list(PCLASS_VALUES)} and sum to n_rows")
        for name, feature in (("fare", self.fare), ("age", self.age)):
            if feature.n_known + feature.n_missing != self.n_rows:
                raise ValueError(f"{name}: n_known + n_missing must equal n_rows")
        return self


class LayerReference(_Frozen):
    """One hidden layer's units over the training split (final weights, eval mode)."""

    name: str = Field(description="hidden1, hidden2, ...")
    mean: list[Finite] = Field(description="Per unit: mean of the Linear output (BatchNorm's input).")
    var: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(description="Per unit: its variance.")
    scale: list[Finite] = Field(description="Per unit: served pre-activation = scale * Linear output + shift.")
    shift: list[Finite]

    @model_validator(mode="after")
    def _check(self) -> LayerReference:
        if not len(self.mean) == len(self.var) == len(self.scale) == len(self.shift) >= 1:
            raise ValueError(f"layer {self.name}: mean, var, scale and shift need one value per unit each")
        return self

    @property
    def units(self) -> int:
        """Number of units."""
        return len(self.mean)


class Reference(_Frozen):
    """What one variant's monitoring compares live traffic with."""

    format_version: int = REFERENCE_FORMAT_VERSION
    features: FeatureReference
    layers: list[LayerReference] = Field(min_length=1)


def numeric_reference(column: FloatArray) -> NumericReference:
    """A numeric column's reference: NaN counts as missing; the known values sorted (or quantiles of them)."""
    known = np.sort(column[~np.isnan(column)])
    values = known
    if known.size > SAMPLE_MAX:
        values = np.quantile(known, (np.arange(SAMPLE_MAX) + 0.5) / SAMPLE_MAX)
    return NumericReference(
        n_missing=int(column.size - known.size),
        n_known=int(known.size),
        values=values.tolist(),
        quantiles=bool(known.size > SAMPLE_MAX),
    )


def feature_reference(raw: FloatArray) -> FeatureReference:
    """The features' reference from raw training rows (columns FEATURES, NaN for a missing value)."""
    pclass = raw[:, PCLASS_INDEX]
    return FeatureReference(
        n_rows=int(raw.shape[0]),
        pclass_counts={str(v): int((pclass == v).sum()) for v in PCLASS_VALUES},
        fare=numeric_reference(raw[:, FARE_INDEX]),
        age=numeric_reference(raw[:, AGE_INDEX]),
    )


def layer_reference(name: str, outputs: FloatArray, scale: FloatArray, shift: FloatArray) -> LayerReference:
    """A layer's reference from its Linear outputs on every training row (rows x units, float64)."""
    return LayerReference(
        name=name,
        mean=outputs.mean(axis=0).tolist(),
        var=outputs.var(axis=0).tolist(),
        scale=scale.tolist(),
        shift=shift.tolist(),
    )


def read_reference(path: Path) -> Reference:
    """Parse a reference file (JsonFileError or OSError on a bad one)."""
    return read_json_model(path, Reference)


def parse_reference(data: bytes) -> Reference:
    """Parse a reference from its bytes (pydantic.ValidationError on a bad one)."""
    return Reference.model_validate_json(data)
