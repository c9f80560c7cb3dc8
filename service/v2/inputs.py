"""The models' V2 inputs: `features` [N, 3] or the columns Pclass, Fare, Age [N], checked by the input rules."""

from __future__ import annotations

from typing import Final

import numpy as np
from pydantic import ValidationError

from service.errors import MAX_ERRORS_LISTED, ApiError
from service.schemas import Passenger
from service.v2.codec import Tensor, bad_request
from survival.features import AGE_INDEX, AGE_MAX, FARE_MAX, FEATURES, PCLASS_VALUES, FloatArray

FEATURES_TENSOR: Final[str] = "features"
COLUMN_TENSORS: Final[tuple[str, ...]] = FEATURES
USAGE: Final[str] = (
    f"send one tensor {FEATURES_TENSOR!r} of shape [N, 3] ({', '.join(FEATURES)}; NaN for an unknown Age) "
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
    problems = rule_problems(raw)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ApiError(422, f"{problems[0]}{more}")
    return raw


def column_length(tensor: Tensor) -> int:
    """N for a column of shape [N] (or [N, 1], as some clients send it)."""
    if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)):
        bad_request(f"input {tensor.name!r} has shape {list(tensor.shape)}, expected [N]")
    return tensor.shape[0]


def rule_problems(raw: FloatArray) -> list[str]:
    """The input rules' complaints about raw rows, worded as /predict words them ('row 3: Fare: ...')."""
    pclass, fare, age = raw[:, 0], raw[:, 1], raw[:, AGE_INDEX]
    with np.errstate(invalid="ignore"):
        bad = (
            ~np.isin(pclass, PCLASS_VALUES)
            | ~np.isfinite(fare)
            | (fare < 0)
            | (fare > FARE_MAX)
            | (~np.isnan(age) & ~((age > 0) & (age <= AGE_MAX)))
        )
    problems: list[str] = []
    for index in np.flatnonzero(bad)[:MAX_ERRORS_LISTED].tolist():
        p, f, a = raw[index].tolist()
        row = {"pclass": int(p) if p.is_integer() else p, "fare": f, "age": None if np.isnan(a) else a}
        try:
            Passenger.model_validate(row)
        except ValidationError as exc:
            for error in exc.errors():
                field = FEATURES[("pclass", "fare", "age").index(str(error["loc"][0]))]
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"row {index}: {field}: {message}")
    return problems
