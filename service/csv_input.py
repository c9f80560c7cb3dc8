"""CSV bodies to passengers: Kaggle's test.csv format, values per survival/rules.py, a column at a time.

The header names Pclass, Fare and Age (any case; PassengerId optional, other columns ignored). Blank lines
(as a file written with `\\r\\r\\n` line ends has between its rows) are skipped: they neither count towards
the row limit nor shift the row numbers that errors name. A PassengerId must be safe to write back into a
submission file (`survival.rules.check_passenger_id`) and unique.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any, Final

import numpy as np

from service.errors import MAX_ERRORS_LISTED, ApiError, summary
from service.schemas import ErrorItem
from survival.rules import FIELDS, RULES, FloatArray, check_passenger_ids, clip, parse_column

ID_COLUMN: Final[str] = "PassengerId"
# Header names, matched case-insensitively, -> the name errors use (Kaggle's spelling).
CSV_COLUMNS: Final[dict[str, str]] = {rule.column.lower(): rule.column for rule in RULES.values()}


def csv_reader(body: bytes) -> Any:
    """A strict CSV reader of a UTF-8 body (one byte order mark allowed); 400 for text that is not UTF-8."""
    try:
        text = body.decode("utf-8-sig")  # spreadsheets write a byte order mark before UTF-8 CSV
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"CSV body is not UTF-8 text (invalid byte at offset {exc.start})") from None
    # strict: an unterminated quote or text after a closing quote is an error, not silently merged rows.
    return csv.reader(io.StringIO(text, newline=""), strict=True)


def parse_csv(body: bytes, max_batch: int) -> tuple[FloatArray, list[str] | None]:
    """The raw rows of a CSV body and its PassengerIds (None without that column); 4xx naming each problem."""
    reader = csv_reader(body)
    try:
        # A blank line is a row without a non-empty cell (`any` runs in C: no Python call per row).
        header = next((fields for fields in reader if any(fields)), None)
        if header is None:
            raise ApiError(422, "CSV body is empty: expected a header with Pclass, Fare, Age")
        columns = _columns(header)
        rows = [fields for fields in reader if any(fields)]
    except csv.Error as exc:
        raise ApiError(422, f"CSV is malformed near line {reader.line_num}: {exc}") from None
    if len(rows) > max_batch:
        raise ApiError(413, f"CSV has more than {max_batch} data rows, the limit")
    if not rows:
        raise ApiError(422, "CSV has a header but no data rows")
    return _check_rows(rows, len(header), columns)


def _columns(header: list[str]) -> dict[str, int]:
    """Positions of the columns we read (lower-case names), refusing a header that repeats or lacks one."""
    counts = Counter(name.strip().lower() for name in header)
    wanted = {**CSV_COLUMNS, ID_COLUMN.lower(): ID_COLUMN}
    # Like a duplicate JSON key: two Pclass columns are ambiguous, so neither is picked silently.
    repeated = [title for key, title in wanted.items() if counts[key] > 1]
    if repeated:
        raise ApiError(
            422,
            f"CSV header repeats column(s) {', '.join(repeated)}: which one to use is ambiguous",
            [ErrorItem(field=name, message="column appears more than once in the header") for name in repeated],
        )
    missing = [title for key, title in CSV_COLUMNS.items() if key not in counts]
    if missing:
        _explain_header(header)
        raise ApiError(
            422,
            f"CSV header lacks column(s) {', '.join(missing)}",
            [ErrorItem(field=m, message="column missing from the header") for m in missing],
        )
    return {name.strip().lower(): i for i, name in enumerate(header) if name.strip().lower() in wanted}


def _explain_header(header: list[str]) -> None:
    """A 422 that names the likely cause when a header lacks our columns: a second byte order mark, or another
    separator (spreadsheets in many locales write `;`) that left the whole header in one cell."""
    first = header[0]
    if first.startswith("\ufeff"):
        raise ApiError(422, "CSV starts with two byte order marks; send UTF-8 with at most one")
    if len(header) == 1:
        for separator in (";", "\t", "|"):
            names = {name.strip().lower() for name in first.split(separator)}
            if len(names) > 1 and set(CSV_COLUMNS) <= names:
                shown = "a tab" if separator == "\t" else f"'{separator}'"
                raise ApiError(422, f"CSV header is separated by {shown}; send comma-separated values")


def _check_rows(rows: list[list[str]], width: int, columns: dict[str, int]) -> tuple[FloatArray, list[str] | None]:
    errors: list[ErrorItem] = []
    id_col = columns.get(ID_COLUMN.lower())
    # Every per-row step below is a comprehension or a C-level map: no Python function call per row.
    whole: list[int] | range = range(len(rows))
    if set(map(len, rows)) != {width}:
        whole = [i for i, fields in enumerate(rows) if len(fields) == width]

    def error(i: int, field: str | None, message: str) -> ErrorItem:
        # Rows count data rows from 1, blank lines not included; the PassengerId as the client wrote it, clipped.
        shown = clip(rows[i][id_col].strip()) if id_col is not None and id_col < len(rows[i]) else ""
        return ErrorItem(field=field, row=i + 1, passenger_id=shown or None, message=message)

    if len(whole) < len(rows):
        ragged = sorted(set(range(len(rows))) - set(whole))[:MAX_ERRORS_LISTED]
        errors += [error(i, None, f"row has {len(rows[i])} fields, the header has {width}") for i in ragged]
    ids: list[str] | None = None
    if id_col is not None:
        ids, violations = check_passenger_ids([rows[i][id_col] for i in whole], MAX_ERRORS_LISTED)
        errors += [error(whole[v.index], ID_COLUMN, v.message) for v in violations]
    raw = np.full((len(rows), len(FIELDS)), np.nan)
    for j, name in enumerate(FIELDS):
        col = columns[name]
        values, violations = parse_column(name, [rows[i][col] for i in whole], MAX_ERRORS_LISTED)
        raw[whole, j] = values
        errors += [error(whole[v.index], RULES[name].column, v.message) for v in violations]
    if errors:
        errors.sort(key=lambda e: e.row or 0)
        stopped = len(errors) > MAX_ERRORS_LISTED
        raise ApiError(422, summary(errors, stopped=stopped), errors[:MAX_ERRORS_LISTED])
    return raw, ids
