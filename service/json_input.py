"""JSON bodies to passengers: strict UTF-8 JSON, one passenger object or {"passengers": [...]}, values per the rules."""

from __future__ import annotations

from itertools import repeat
from typing import Any, Final

import numpy as np

from service.dataplane import strict_json
from service.errors import MAX_ERRORS_LISTED, ApiError, summary
from service.schemas import IGNORED_KAGGLE_FIELDS, ErrorItem
from survival.rules import FIELDS, SPELLINGS, FloatArray, RuleError, check_matrix, check_value, clip

UNKNOWN_FIELD: Final[str] = "unknown field (accepted: pclass, fare, age, or Kaggle's Pclass, Fare, Age)"
# Up to this many passengers are checked item by item (a few scalar rule calls each); a larger batch a column at a
# time with NumPy, whose fixed cost per call only pays off over many rows.
SMALL_BATCH: Final[int] = 8


def parse_json(body: bytes, max_batch: int) -> FloatArray:
    """One passenger object, or {"passengers": [...]}; no NaN/Infinity, no duplicate keys, values per the rules."""
    max_keys = strict_json.KEYS_PER_PASSENGER * max_batch + strict_json.MAX_OBJECT_KEYS
    data = strict_json.loads(body, allow_nan=False, max_keys=max_keys)
    if not isinstance(data, dict):
        raise ApiError(422, f"body must be a JSON object (a passenger or {{'passengers': [...]}}), got {_kind(data)}")
    if "passengers" not in data:
        return passenger_rows([data], indexed=False)
    others = [key for key in data if key != "passengers"][:MAX_ERRORS_LISTED]
    if others:
        items = [ErrorItem(field=clip(key), message="unknown field next to passengers") for key in others]
        raise ApiError(422, summary(items), items)
    passengers = data["passengers"]
    if not isinstance(passengers, list):
        item = ErrorItem(field="passengers", message=f"must be an array of passengers, got {_kind(passengers)}")
        raise ApiError(422, summary([item]), [item])
    if not passengers:
        item = ErrorItem(field="passengers", message="must hold at least 1 item")
        raise ApiError(422, summary([item]), [item])
    if len(passengers) > max_batch:
        raise ApiError(413, f"passengers: {len(passengers)} passengers is over the limit of {max_batch}")
    return passenger_rows(passengers, indexed=True)


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null", dict: "an object"}.get(
        type(value), "a number"
    )


FAST_KEYS: Final[frozenset[str]] = frozenset(FIELDS)
_INT: Final[frozenset[type]] = frozenset({int})
_NUMBER_OR_NULL: Final[frozenset[type]] = frozenset({int, float, type(None)})


def plainly_valid_rows(items: list[Any]) -> FloatArray | None:
    """The raw rows of a batch whose items are all plainly valid, else None (then `passenger_rows` words it).

    The same rules, applied a column at a time: lower-case keys only, exact JSON types (an int Pclass,
    numbers or null), then `survival.rules.check_matrix` on the float64 matrix. For 10,000 passengers
    this costs a few milliseconds where the item-by-item path costs tens.
    """
    # C-level maps only: no Python call per item.
    if not items or set(map(type, items)) != {dict} or not all(map(FAST_KEYS.issuperset, items)):
        return None
    columns = [list(map(dict.get, items, repeat(name))) for name in FIELDS]
    if set(map(type, columns[0])) != _INT or not all(set(map(type, c)) <= _NUMBER_OR_NULL for c in columns[1:]):
        return None
    try:
        raw = np.array(columns, dtype=np.float64).T  # None -> NaN
    except OverflowError:  # an integer beyond float64: let the item path word it
        return None
    checked, violations = check_matrix(raw, limit=1)
    return None if violations else np.ascontiguousarray(checked)


def passenger_rows(items: list[Any], *, indexed: bool) -> FloatArray:
    """The raw rows of JSON passengers (`indexed`: errors name each one's index in `passengers`); 422 if any is bad."""
    fast = plainly_valid_rows(items) if len(items) > SMALL_BATCH else None
    if fast is not None:
        return fast
    rows = np.empty((len(items), len(FIELDS)), dtype=np.float64)
    errors: list[ErrorItem] = []
    for i, item in enumerate(items):
        _passenger_row(item, i if indexed else None, rows[i], errors)
        if len(errors) >= MAX_ERRORS_LISTED:
            raise ApiError(422, summary(errors, stopped=True), errors)
    if errors:
        raise ApiError(422, summary(errors), errors)
    return rows


def _passenger_row(item: object, index: int | None, out: FloatArray, errors: list[ErrorItem]) -> None:
    """Check one JSON passenger into `out`, appending its problems to `errors` (stopping at the limit)."""
    if not isinstance(item, dict):
        errors.append(ErrorItem(index=index, message=f"must be a passenger object, got {_kind(item)}"))
        return
    given: dict[str, str] = {}  # rule name -> the spelling the client used
    values: dict[str, object] = {}
    for key, value in item.items():
        name = SPELLINGS.get(key)
        if name is None:
            if key not in IGNORED_KAGGLE_FIELDS:
                errors.append(ErrorItem(field=clip(key), index=index, message=UNKNOWN_FIELD))
                if len(errors) >= MAX_ERRORS_LISTED:
                    return
            continue
        if name in given:
            message = f"given twice, as {given[name]!r} and {key!r}: send one of them"
            errors.append(ErrorItem(field=f"{given[name]}, {key}", index=index, message=message))
            continue
        given[name] = key
        values[name] = value
    for j, name in enumerate(FIELDS):
        try:
            out[j] = check_value(name, values.get(name))
        except RuleError as exc:
            errors.append(ErrorItem(field=given.get(name, name), index=index, message=exc.message))
