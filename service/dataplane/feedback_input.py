"""POST /feedback bodies to outcomes: JSON `{"outcomes": [...]}` or a CSV with a PredictionId or PassengerId column
and a Survived column (Kaggle's train.csv as it is). Strict like /predict: every problem named, none guessed."""

from __future__ import annotations

import csv
import io
from typing import Any, Final

from service.dataplane.strict_json import loads
from service.errors import MAX_ERRORS_LISTED, ApiError, summary
from service.schemas import ErrorItem
from service.store.records import KeyKind, Outcome, prediction_key
from survival.rules import RuleError, check_passenger_id, clip

ID_FIELDS: Final[tuple[KeyKind, ...]] = ("prediction_id", "passenger_id")
ITEM_FIELDS: Final[frozenset[str]] = frozenset({*ID_FIELDS, "survived"})
# CSV header names (any case) -> what the outcome names.
CSV_IDS: Final[dict[str, KeyKind]] = {"predictionid": "prediction_id", "passengerid": "passenger_id"}
SURVIVED_COLUMN: Final[str] = "survived"
SURVIVED_CELLS: Final[dict[str, int]] = {"0": 0, "1": 1, "false": 0, "true": 1}
SURVIVED_RULE: Final[str] = "must be 0, 1, true or false"
PREDICTION_ID_RULE: Final[str] = "must be <request id>/<row>, as a /predict answer's `id`"


class Problems:
    """The problems found so far, up to MAX_ERRORS_LISTED (then parsing stops)."""

    def __init__(self) -> None:
        self.items: list[ErrorItem] = []

    def add(self, field: str, message: str, row: int | None = None) -> None:
        """Note one problem; a 422 naming them once the list is full."""
        self.items.append(ErrorItem(field=field, row=row, message=message))
        if len(self.items) > MAX_ERRORS_LISTED:
            self.raise_if_any()

    def raise_if_any(self) -> None:
        """A 422 naming every problem noted, if any."""
        if self.items:
            stopped = len(self.items) > MAX_ERRORS_LISTED
            raise ApiError(422, summary(self.items, stopped=stopped), self.items[:MAX_ERRORS_LISTED])


def checked_key(kind: KeyKind, text: str) -> str | None:
    """The id, or None when it breaks its rule."""
    if kind == "prediction_id":
        return text if len(text) <= 200 and prediction_key(text) is not None else None
    try:
        return check_passenger_id(text)
    except RuleError:
        return None


def parse_json_outcomes(body: bytes, max_outcomes: int) -> list[Outcome]:
    """The outcomes of a JSON body; 4xx naming each problem."""
    data = loads(body, allow_nan=False, max_keys=max_outcomes * len(ITEM_FIELDS) + 8)
    if not isinstance(data, dict) or set(data) != {"outcomes"}:
        raise ApiError(422, 'body must be a JSON object {"outcomes": [...]} and nothing else')
    items = data["outcomes"]
    if not isinstance(items, list) or not items:
        raise ApiError(422, "outcomes: must be a non-empty array")
    if len(items) > max_outcomes:
        raise ApiError(413, f"outcomes: {len(items)} outcomes is over the limit of {max_outcomes}")
    problems = Problems()
    found: list[Outcome] = []
    for i, item in enumerate(items):
        where = f"outcomes[{i}]"
        outcome = json_outcome(item, where, problems)
        if outcome is not None:
            found.append(outcome)
    problems.raise_if_any()
    return found


def json_outcome(item: Any, where: str, problems: Problems) -> Outcome | None:
    """One JSON outcome, or None with its problems noted."""
    if not isinstance(item, dict):
        problems.add(where, "must be an object with prediction_id or passenger_id, and survived")
        return None
    unknown = sorted(set(item) - ITEM_FIELDS)
    if unknown:
        problems.add(f"{where}.{clip(unknown[0])}", "unknown field (accepted: prediction_id, passenger_id, survived)")
        return None
    kinds = [kind for kind in ID_FIELDS if kind in item]
    if len(kinds) != 1:
        problems.add(where, "give exactly one of prediction_id and passenger_id")
        return None
    kind = kinds[0]
    value = item[kind]
    key = checked_key(kind, value) if isinstance(value, str) else None
    survived = item.get("survived")
    if key is None:
        problems.add(f"{where}.{kind}", PREDICTION_ID_RULE if kind == "prediction_id" else "not a valid PassengerId")
    # JSON's true and false are Python's bools, which are ints too; 1.0 or "1" are not accepted.
    if type(survived) not in (int, bool) or survived not in (0, 1):
        problems.add(f"{where}.survived", SURVIVED_RULE + ("" if "survived" in item else " (missing)"))
        return None
    if key is None:
        return None
    return Outcome(kind, key, int(survived), where, f"{where}.{kind}", f"{where}.survived")


def parse_csv_outcomes(body: bytes, max_outcomes: int) -> list[Outcome]:
    """The outcomes of a CSV body; 4xx naming each problem (rows count from 1 after the header)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"CSV body is not UTF-8 text (invalid byte at offset {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((fields for fields in reader if any(fields)), None)
        if header is None:
            raise ApiError(422, "CSV body is empty: expected a header with PredictionId or PassengerId, and Survived")
        names = [name.strip().lower() for name in header]
        if len(set(names)) != len(names):
            raise ApiError(422, "CSV header repeats a column: which one to use is ambiguous")
        id_name = next((name for name in CSV_IDS if name in names), None)
        if id_name is None or SURVIVED_COLUMN not in names:
            raise ApiError(422, "CSV header needs a PredictionId or PassengerId column and a Survived column")
        id_col, survived_col = names.index(id_name), names.index(SURVIVED_COLUMN)
        rows = []
        for fields in reader:
            if any(fields):
                rows.append(fields)
                if len(rows) > max_outcomes:
                    raise ApiError(413, f"CSV has more than {max_outcomes} data rows, the limit")
    except csv.Error as exc:
        raise ApiError(422, f"CSV is malformed near line {reader.line_num}: {exc}") from None
    if not rows:
        raise ApiError(422, "CSV has a header but no data rows")
    kind = CSV_IDS[id_name]
    problems = Problems()
    found: list[Outcome] = []
    for i, fields in enumerate(rows, start=1):
        if len(fields) != len(header):
            problems.add("row", f"has {len(fields)} fields, the header has {len(header)}", row=i)
            continue
        key = checked_key(kind, fields[id_col].strip())
        survived = SURVIVED_CELLS.get(fields[survived_col].strip().lower())
        if key is None:
            problems.add(header[id_col].strip(), "not a valid " + header[id_col].strip(), row=i)
        if survived is None:
            problems.add(header[survived_col].strip(), SURVIVED_RULE, row=i)
        if key is not None and survived is not None:
            found.append(
                Outcome(kind, key, survived, f"row {i}", header[id_col].strip(), header[survived_col].strip(), row=i)
            )
    problems.raise_if_any()
    return found
