"""Request bodies to passengers: strict JSON (single or batch) and Kaggle-style CSV, with precise errors."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import numpy as np
from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from service.errors import ApiError, items_from_validation, summary
from service.schemas import ErrorItem, Passenger, PassengerBatch
from survival.features import AGE_MAX, FARE_MAX, PCLASS_VALUES, FloatArray

JSON_TYPES: Final[tuple[str, ...]] = ("application/json",)
CSV_TYPES: Final[tuple[str, ...]] = ("text/csv", "application/csv")
CSV_COLUMNS: Final[dict[str, str]] = {"pclass": "Pclass", "fare": "Fare", "age": "Age"}


@dataclass(frozen=True)
class ParsedPassengers:
    """Validated passengers in input order, as the raw feature matrix the models take."""

    raw: FloatArray
    passenger_ids: list[str] | None = None


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header, lower-cased ('' when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) anything over `max_bytes` without reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > max_bytes:
                raise ApiError(413, f"request body is over the limit of {max_bytes} bytes")
    except ClientDisconnect:
        # The client hung up mid-body (load generators do at the end of a run): nothing to answer,
        # and not a server error to log with a traceback.
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    return bytes(chunks)


def parse_body(body: bytes, content_type: str | None, max_batch: int) -> ParsedPassengers:
    """Dispatch on the Content-Type: JSON or CSV; anything else is a 415."""
    kind = media_type(content_type)
    if kind in JSON_TYPES or kind.endswith("+json"):
        return parse_json(body, max_batch)
    if kind in CSV_TYPES:
        return parse_csv(body, max_batch)
    shown = kind or "none"
    raise ApiError(415, f"Content-Type {shown} is not supported; send application/json or text/csv")


def _reject_constant(name: str) -> NoReturn:
    raise ApiError(400, f"malformed JSON: {name} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ApiError(400, f"malformed JSON: duplicate key {key!r} in an object")
        obj[key] = value
    return obj


def parse_json(body: bytes, max_batch: int) -> ParsedPassengers:
    """One passenger object, or {"passengers": [...]}; strict types, no NaN/Infinity, no duplicate keys."""
    if not body.strip():
        raise ApiError(400, "malformed JSON: the body is empty")
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    except ValueError:
        # int() refuses integer literals longer than sys.get_int_max_str_digits() (a DoS guard), unwrapped by json.
        limit = sys.get_int_max_str_digits()
        raise ApiError(400, f"malformed JSON: a number has more than {limit} digits") from None
    if not isinstance(data, dict):
        raise ApiError(422, f"body must be a JSON object (a passenger or {{'passengers': [...]}}), got {_kind(data)}")
    try:
        if "passengers" in data:
            passengers = data["passengers"]
            if isinstance(passengers, list) and len(passengers) > max_batch:
                raise ApiError(413, f"passengers: {len(passengers)} passengers is over the limit of {max_batch}")
            fast = plainly_valid_rows(passengers) if len(data) == 1 else None
            if fast is not None:
                return ParsedPassengers(raw=fast)
            batch = PassengerBatch.model_validate(data).passengers
        else:
            batch = [Passenger.model_validate(data)]
    except ValidationError as exc:
        items = items_from_validation(list(exc.errors()))
        raise ApiError(422, summary(items), items) from None
    return ParsedPassengers(raw=to_raw(batch))


FAST_KEYS: Final[frozenset[str]] = frozenset({"pclass", "fare", "age"})
NUMBER_TYPES: Final[tuple[type, ...]] = (int, float)


def plainly_valid_rows(items: object) -> FloatArray | None:
    """The raw rows of a batch whose items are all plainly valid, else None (then pydantic explains the problem).

    Pydantic builds a model per passenger: for 10,000 passengers that costs more than the models'
    arithmetic. This path accepts only what `Passenger` would accept without any doubt (lower-case
    keys, exact int/float types, in-range values) and leaves everything else to the model, which
    stays the one place where errors are worded. A test pins both paths to the same result.
    """
    if not isinstance(items, list) or not items:
        return None
    rows = []
    for item in items:
        if type(item) is not dict or not item.keys() <= FAST_KEYS:
            return None
        pclass, fare, age = item.get("pclass"), item.get("fare"), item.get("age")
        if type(pclass) is not int or pclass not in PCLASS_VALUES:
            return None
        if type(fare) not in NUMBER_TYPES or not 0 <= fare <= FARE_MAX:  # type: ignore[operator]
            return None
        if age is None:
            age = math.nan
        elif type(age) not in NUMBER_TYPES or not 0 < age <= AGE_MAX:
            return None
        rows.append((pclass, fare, age))
    return np.array(rows, dtype=np.float64)


def parse_csv(body: bytes, max_batch: int) -> ParsedPassengers:
    """Kaggle test.csv format: a header with Pclass, Fare, Age (PassengerId optional), other columns ignored."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"CSV body is not UTF-8 text (invalid byte at offset {exc.start})") from None
    # strict: an unterminated quote or text after a closing quote is an error, not silently merged rows.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ApiError(422, "CSV body is empty: expected a header with Pclass, Fare, Age")
        columns = {name.strip().lower(): i for i, name in enumerate(header)}
        counts = Counter(name.strip().lower() for name in header)
        # Like a duplicate JSON key: two Pclass columns are ambiguous, so neither is picked silently.
        repeated = [title for key, title in {**CSV_COLUMNS, "passengerid": "PassengerId"}.items() if counts[key] > 1]
        if repeated:
            raise ApiError(
                422,
                f"CSV header repeats column(s) {', '.join(repeated)}: which one to use is ambiguous",
                [ErrorItem(field=name, message="column appears more than once in the header") for name in repeated],
            )
        missing = [title for key, title in CSV_COLUMNS.items() if key not in columns]
        if missing:
            raise ApiError(
                422,
                f"CSV header lacks column(s) {', '.join(missing)}",
                [ErrorItem(field=m, message="column missing from the header") for m in missing],
            )
        id_col = columns.get("passengerid")
        rows: list[Passenger] = []
        ids: list[str] = []
        errors: list[ErrorItem] = []
        for number, fields in enumerate(reader, start=1):
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line, e.g. a trailing newline
            if number > max_batch:
                raise ApiError(413, f"CSV has more than {max_batch} data rows, the limit")
            passenger_id = fields[id_col].strip() if id_col is not None and id_col < len(fields) else None
            if len(fields) != len(header):
                errors.append(
                    ErrorItem(
                        row=number,
                        passenger_id=passenger_id,
                        message=f"row has {len(fields)} fields, the header has {len(header)}",
                    )
                )
                continue
            ids.append(passenger_id or "")
            try:
                rows.append(_csv_passenger(fields, columns))
            except ValidationError as exc:
                for item in items_from_validation(list(exc.errors()), row=number, passenger_id=passenger_id):
                    # Name the CSV column as the client wrote it (Kaggle's spelling).
                    errors.append(item.model_copy(update={"field": CSV_COLUMNS.get(item.field or "", item.field)}))
            except _CellError as exc:
                errors.append(ErrorItem(field=exc.field, row=number, passenger_id=passenger_id, message=exc.message))
    except csv.Error as exc:
        raise ApiError(422, f"CSV is malformed near row {reader.line_num}: {exc}") from None
    if errors:
        raise ApiError(422, summary(errors), errors)
    if not rows:
        raise ApiError(422, "CSV has a header but no data rows")
    return ParsedPassengers(raw=to_raw(rows), passenger_ids=ids if id_col is not None else None)


class _CellError(ValueError):
    """A CSV cell that is not even of the right kind (before range checks); names its column."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _csv_passenger(fields: list[str], columns: dict[str, int]) -> Passenger:
    pclass = fields[columns["pclass"]].strip()
    fare = fields[columns["fare"]].strip()
    age = fields[columns["age"]].strip()
    digits = pclass.removeprefix("-")
    # ASCII and short: isdigit() passes '³' (int() raises on it) and '٣' (int() reads 3); int() raises on 4301+ digits.
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 9):
        raise _CellError("Pclass", f"{pclass[:40]!r} is not 1, 2 or 3" if pclass else "value is missing")
    if not fare:
        raise _CellError("Fare", "value is missing (this service does not guess a fare; send a number)")
    return Passenger.model_validate(
        {"pclass": int(pclass), "fare": _number("Fare", fare), "age": _number("Age", age) if age else None}
    )


def _number(column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _CellError(column, f"{text[:40]!r} is not a number") from None


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def to_raw(passengers: list[Passenger]) -> FloatArray:
    """The (n, 3) matrix Pclass, Fare, Age, with NaN for an unknown age."""
    return np.array(
        [(p.pclass, p.fare, np.nan if p.age is None else p.age) for p in passengers],
        dtype=np.float64,
    ).reshape(len(passengers), 3)
