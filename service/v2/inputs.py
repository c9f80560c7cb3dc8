"""The models' V2 inputs: `features` [N, 3] or the columns Pclass, Fare, Age [N], checked by survival/rules.py."""

from __future__ import annotations

from typing import Final

import numpy as np

from service.errors import MAX_ERRORS_LISTED, ApiError
from service.v2.codec import Tensor, bad_request
from survival.features import FEATURES, FloatArray
from survival.rules import RULES, check_matrix

FEATURES_TENSOR: Final[str] = "features"
COLUMN_TENSORS: Final[tuple[str, ...]] = FEATURES
USAGE: Final[str] = (
    f"send one tensor {FEATURES_TENSOR!r} of shape [N, 3] ({', '.join(FEATURES)}; NaN for an unknown Fare or Age) "
    f"or three tensors {', '.join(FEATURES)} of shape [N]"
)


def raw_rows(inputs: dict[str, Tensor], max_rows: int) -> FloatArray:
    """The (N, 3) matrix Pclass, Fare, Age (NaN: unknown age) from either input form, checked by the input rules."""
    names = set(inputs)
    if names == {FEATURES_TENSOR}:
        tensor = inputs[FEATURES_TENSOR]
        if len(tensor.shape) != 2 or tensor.shape[1] != len(FEATURES):
            bad_request(f"input {FEATURES_TENSOR!r} has shape {list(tensor.shape)}, expected [N, {len(FEATURES)}]")
        raw = tensor.values.reshape(tensor.shape)
    elif names == set(COLUMN_TENSORS):
        lengths = {name: column_length(inputs[name]) for name in COLUMN_TENSORS}
        if len(set(lengths.values())) != 1:
            bad_request(f"inputs {', '.join(COLUMN_TENSORS)} must have the same length, got {lengths}")
        raw = np.column_stack([inputs[name].values for name in COLUMN_TENSORS])
    else:
        bad_request(f"inputs {sorted(names)} are not this model's: {USAGE}")
    rows = raw.shape[0]
    if rows == 0:
        raise ApiError(422, "inputs: at least one passenger (one row) is needed")
    if rows > max_rows:
        raise ApiError(413, f"inputs: {rows} passengers is over the limit of {max_rows}")
    checked, problems = rule_problems(raw)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ApiError(422, f"{problems[0]}{more}")
    return checked


def column_length(tensor: Tensor) -> int:
    """N for a column of shape [N] (or [N, 1], as some clients send it)."""
    if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)):
        bad_request(f"input {tensor.name!r} has shape {list(tensor.shape)}, expected [N]")
    return tensor.shape[0]


def rule_problems(raw: FloatArray) -> tuple[FloatArray, list[str]]:
    """The rows as the input rules read them, and their complaints ('row 3: Fare: ...', rows from 0)."""
    checked, violations = check_matrix(raw, MAX_ERRORS_LISTED)
    return checked, [f"row {v.index}: {RULES[v.field].column}: {v.message}" for v in violations]
