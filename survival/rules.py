"""The input rules: one table, and the only functions that apply it, for every way a passenger arrives.

Every path that reads passengers calls these, so they accept the same values, produce the same numbers and
refuse the same values naming the same field with the same message: the API's JSON model
(`service.schemas.Passenger`), the JSON batch path, the CSV reader, the trainer's CSV loader and the
Open Inference Protocol route.

The rules (`RULES`, one per feature, in model order):
- `pclass`: required; the integer 1, 2 or 3 (in JSON an integer, never `3.0`, `true` or `"3"`).
- `fare`: a number in [0, 10000]; missing (JSON null or absent, an empty cell, NaN) is filled by the model with
  the training median fare of the passenger's class.
- `age`: a number in (0, 120]; missing is filled with the training median age.

A text cell (CSV) holds a number written as JSON writes one (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`,
ASCII digits only), optionally surrounded by spaces or tabs; an empty cell is a missing value. So `1_0`, `0x10`,
`nan`, `inf`, `+1`, `07`, `7,25`, `.5` and non-ASCII digits are refused, not read as some other number; `-0` is
read as 0. For `pclass` the cell must be an integer literal (`3.0` and `1e0` are refused, as in JSON).

The API (names are stable):
- `check_value(field, value) -> float`: one decoded JSON value (`None` means missing) to its number.
- `parse_cell(field, text) -> float`: one text cell to its number.
- `parse_column(field, cells, limit)` -> (values, violations): a column of text cells, vectorised.
- `check_array(field, values, limit)` -> (values, violations): a float64 column, NaN meaning missing, vectorised.
- `check_matrix(raw, limit)` -> (raw, violations): the (n, 3) matrix Pclass, Fare, Age, checked column by column.
- `check_passenger_id(text) -> str`, `check_passenger_ids(cells, limit)` -> (ids, violations): a CSV PassengerId
  (a column of them, each unique), safe to write back into a submission file.
- `echo(text)`, `clip(text)`: a client's text quoted / cut to ECHO_CHARS characters, for messages.
Every number returned is a float (NaN for a missing optional value; -0 becomes 0). The single-value functions
raise `RuleError(field, message)`; the vectorised ones return at most `limit` `Violation(index, field, message)`
in index order. A message is the rule's statement followed by what was received, in parentheses: the statement
(`RULES[field].statement`) is the same on every path, the part in parentheses shows the value as that path saw it
(never more than `ECHO_CHARS` characters of it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# The highest fare on record is 512.33; anything far above it is a unit or typing error.
FARE_MAX: Final[float] = 10_000.0
AGE_MAX: Final[float] = 120.0
PCLASS_VALUES: Final[tuple[int, ...]] = (1, 2, 3)
# An error never echoes more than this many characters of what the client sent.
ECHO_CHARS: Final[int] = 40
MISSING_PHRASE: Final[str] = "it is missing"


@dataclass(frozen=True)
class Rule:
    """One input field: its names, whether it may be missing, and the values it admits."""

    name: str  # the API's spelling, lower case
    column: str  # Kaggle's spelling, as in its CSV files
    required: bool
    integer: bool
    low: float
    high: float
    low_inclusive: bool
    statement: str  # the error message, the same on every path
    description: str  # for the API documentation

    def admits(self, values: FloatArray) -> npt.NDArray[np.bool_]:
        """Which known (non-NaN) values satisfy the rule; NaN and infinities never do."""
        with np.errstate(invalid="ignore"):
            above = values >= self.low if self.low_inclusive else values > self.low
            ok = above & (values <= self.high)
            if self.integer:
                ok &= values == np.round(values)
        return np.asarray(ok, dtype=np.bool_)

    def admits_one(self, value: float) -> bool:
        """`admits` for one known value, without NumPy's per-call cost (the differential test pins the two)."""
        above = value >= self.low if self.low_inclusive else value > self.low
        return above and value <= self.high and (not self.integer or value == round(value))

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the field's JSON value (the OpenAPI documentation is compiled from it)."""
        if self.integer:
            number: dict[str, Any] = {"type": "integer", "enum": [int(v) for v in PCLASS_VALUES]}
        else:
            bound = "minimum" if self.low_inclusive else "exclusiveMinimum"
            number = {"type": "number", bound: self.low, "maximum": self.high}
        schema: dict[str, Any] = number if self.required else {"anyOf": [number, {"type": "null"}]}
        return {**schema, "description": self.description}


RULES: Final[dict[str, Rule]] = {
    rule.name: rule
    for rule in (
        Rule(
            name="pclass",
            column="Pclass",
            required=True,
            integer=True,
            low=1,
            high=3,
            low_inclusive=True,
            statement="must be 1, 2 or 3",
            description="Ticket class: 1, 2 or 3.",
        ),
        Rule(
            name="fare",
            column="Fare",
            required=False,
            integer=False,
            low=0.0,
            high=FARE_MAX,
            low_inclusive=True,
            statement=f"must be a number in [0, {FARE_MAX:g}], or null/empty when unknown",
            description=f"Ticket fare in pounds, 0 to {FARE_MAX:g} (the highest on record is 512.33); null or absent "
            "when unknown (the training median fare of the passenger's class is used).",
        ),
        Rule(
            name="age",
            column="Age",
            required=False,
            integer=False,
            low=0.0,
            high=AGE_MAX,
            low_inclusive=False,
            statement=f"must be a number in (0, {AGE_MAX:g}], or null/empty when unknown",
            description=f"Age in years, in (0, {AGE_MAX:g}]; null or absent when unknown (the training median is "
            "used).",
        ),
    )
}
FIELDS: Final[tuple[str, ...]] = tuple(RULES)  # model order: Pclass, Fare, Age
# Every accepted spelling of a field -> its rule name (the API's lower case and Kaggle's column names).
SPELLINGS: Final[dict[str, str]] = {
    **{name: name for name in RULES},
    **{rule.column: name for name, rule in RULES.items()},
}

_INTEGER: Final[str] = r"-?(?:0|[1-9][0-9]*)"
_NUMBER: Final[str] = _INTEGER + r"(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_PATTERNS: Final[dict[bool, str]] = {True: _INTEGER, False: _NUMBER}  # keyed by Rule.integer
_CELL: Final[dict[bool, re.Pattern[str]]] = {key: re.compile(p) for key, p in _PATTERNS.items()}
# One cell between optional blanks; unambiguous, so a failing match cannot backtrack badly.
_BLANKED_CELL: Final[dict[bool, re.Pattern[str]]] = {
    key: re.compile(f"[ \t]*(?:{p}[ \t]*)?") for key, p in _PATTERNS.items()
}
_BLANKS: Final[str] = " \t"
# A C-level loop holds the GIL until it ends; in slices this long, a thread checking a big column lets the
# event loop in at least every millisecond or so.
_SLICE: Final[int] = 1024


def _all_match(pattern: re.Pattern[str], cells: Sequence[str]) -> bool:
    """Whether `pattern` matches every cell whole, a slice at a time."""
    return all(all(map(pattern.fullmatch, cells[i : i + _SLICE])) for i in range(0, len(cells), _SLICE))


class RuleError(ValueError):
    """A value a rule refuses; `field` is the rule's name (lower case), `message` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Violation:
    """One refused value of a column or matrix: its 0-based position, the rule's name and the message."""

    index: int
    field: str
    message: str


def clip(text: str) -> str:
    """`text` cut to ECHO_CHARS characters (a hostile key or value is never echoed whole)."""
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}... ({len(text)} characters)"


def echo(text: str) -> str:
    """`text` quoted and clipped, for a message."""
    if len(text) <= ECHO_CHARS:
        return repr(text)
    return repr(text[:ECHO_CHARS]) + f"... ({len(text)} characters)"


def refusal(field: str, got: str) -> str:
    """The message for a refused value of `field`: the rule's statement, then what was received."""
    return f"{RULES[field].statement} ({got})"


def _show_int(value: int) -> str:
    if abs(value) >= 10**ECHO_CHARS:  # str() of a huge int is slow (and refused past 4,300 digits)
        return f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
    return str(value)


def _json_kind(value: object) -> str:
    kinds = {str: "a string", bool: "a boolean", list: "an array", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def _finish(rule: Rule, number: float, got: str) -> float:
    if math.isnan(number):
        if rule.required:
            raise RuleError(rule.name, refusal(rule.name, MISSING_PHRASE))
        return math.nan
    if not rule.admits_one(number):
        raise RuleError(rule.name, refusal(rule.name, got))
    return number + 0.0  # -0.0 -> 0.0


def check_value(field: str, value: object) -> float:
    """A decoded JSON value of `field` to its number (NaN when missing); raises RuleError."""
    rule = RULES[field]
    if value is None:
        return _finish(rule, math.nan, MISSING_PHRASE)
    kind = type(value)
    if kind is int:
        assert isinstance(value, int)
        try:
            number = float(value)
        except OverflowError:  # beyond float64: out of every range
            number = math.inf
        return _finish(rule, number, f"got {_show_int(value)}")
    if kind is float and not rule.integer:
        assert isinstance(value, float)
        # NaN is not JSON; a caller handing one over has not meant "missing" (that is None).
        return _finish(rule, math.inf if math.isnan(value) else value, f"got {value!r}")
    if kind is float:
        raise RuleError(field, refusal(field, f"got {value!r}, not an integer"))
    shown = f": {echo(value)}" if isinstance(value, str) else ""
    raise RuleError(field, refusal(field, f"got {_json_kind(value)}{shown}"))


def parse_cell(field: str, text: str) -> float:
    """A text cell of `field` to its number (NaN when empty); raises RuleError."""
    rule = RULES[field]
    cell = text.strip(_BLANKS)
    if not cell:
        return _finish(rule, math.nan, MISSING_PHRASE)
    if _CELL[rule.integer].fullmatch(cell) is None:
        kind = "an integer" if rule.integer else "a number"
        raise RuleError(field, refusal(field, f"got {echo(cell)}, not {kind} as JSON writes it"))
    return _finish(rule, float(cell), f"got {echo(cell)}")


def check_array(field: str, values: FloatArray, limit: int) -> tuple[FloatArray, list[Violation]]:
    """A float64 column of `field` (NaN = missing): the checked values (-0 as 0) and at most `limit` violations."""
    rule = RULES[field]
    column = np.asarray(values, dtype=np.float64)
    missing = np.isnan(column)
    bad = ~missing & ~rule.admits(column)
    if rule.required:
        bad |= missing
    violations = [
        Violation(int(i), field, refusal(field, MISSING_PHRASE if missing[i] else f"got {float(column[i])!r}"))
        for i in np.flatnonzero(bad)[:limit]
    ]
    return column + 0.0, violations


def parse_column(field: str, cells: Sequence[str], limit: int) -> tuple[FloatArray, list[Violation]]:
    """A column of text cells of `field`: their numbers (NaN when empty) and at most `limit` violations."""
    rule = RULES[field]
    if _all_match(_BLANKED_CELL[rule.integer], cells):
        # Every cell is well-formed (the common case): convert at C speed, then check the ranges at once.
        # float() ignores the surrounding blanks the pattern allows; only an empty cell needs a hand.
        try:
            values = list(map(float, cells))
        except ValueError:
            values = [float(c) if c.strip(_BLANKS) else math.nan for c in cells]
        column, violations = check_array(field, np.array(values, dtype=np.float64), limit)
        if not violations:
            return column, []
    # Something is wrong: go cell by cell so each message shows the cell as it was written.
    out = np.empty(len(cells), dtype=np.float64)
    violations = []
    for i, cell in enumerate(cells):
        try:
            out[i] = parse_cell(field, cell)
        except RuleError as exc:
            out[i] = math.nan
            violations.append(Violation(i, field, exc.message))
            if len(violations) >= limit:
                break
    return out, violations


# Up to this many rows check_matrix asks each rule about each value in plain Python first (`Rule.admits_one`):
# NumPy's fixed cost per call outweighs a few comparisons. A violation is still worded by the column path.
SMALL_MATRIX: Final[int] = 8


def _plainly_valid(matrix: FloatArray) -> bool:
    """Whether every value of a few rows satisfies its rule (a missing one only where the rule allows it)."""
    rules = [RULES[field] for field in FIELDS]
    for row in matrix.tolist():
        for rule, value in zip(rules, row, strict=True):
            if value != value:  # NaN: missing
                if rule.required:
                    return False
            elif not rule.admits_one(value):
                return False
    return True


def check_matrix(raw: FloatArray, limit: int) -> tuple[FloatArray, list[Violation]]:
    """The (n, 3) matrix Pclass, Fare, Age (NaN = missing): checked, and at most `limit` violations by row."""
    matrix = np.asarray(raw, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(FIELDS):
        raise ValueError(f"expected an (n, {len(FIELDS)}) array of {', '.join(FIELDS)}, got shape {matrix.shape}")
    if matrix.shape[0] <= SMALL_MATRIX and _plainly_valid(matrix):
        return matrix + 0.0, []  # -0.0 -> 0.0, as check_array
    columns = []
    violations: list[Violation] = []
    for j, field in enumerate(FIELDS):
        column, found = check_array(field, matrix[:, j], limit)
        columns.append(column)
        violations += found
    violations.sort(key=lambda v: (v.index, FIELDS.index(v.field)))
    return np.column_stack(columns).reshape(matrix.shape), violations[:limit]


# A PassengerId is written back into the submission a spreadsheet opens: it must not start like a formula
# (=, +, -, @) or hold a tab, a carriage return or any other control character. Kaggle's ids are integers;
# letters, digits and '.', '_', '-' after the first character are allowed too.
_PASSENGER_ID: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PASSENGER_ID_RULE: Final[str] = (
    "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (so that no spreadsheet "
    "runs it as a formula)"
)


def check_passenger_id(text: str) -> str:
    """A PassengerId cell, stripped of surrounding spaces; raises RuleError unless PASSENGER_ID_RULE holds."""
    cell = text.strip(" ")  # not tabs: a leading tab is how a spreadsheet formula hides
    if _PASSENGER_ID.fullmatch(cell) is None:
        got = MISSING_PHRASE if not cell else f"got {echo(cell)}"
        raise RuleError("PassengerId", f"{PASSENGER_ID_RULE} ({got})")
    return cell


def check_passenger_ids(cells: Sequence[str], limit: int) -> tuple[list[str], list[Violation]]:
    """A PassengerId column: the ids (stripped) and at most `limit` violations, an unsafe or a repeated id each."""
    if _all_match(_PASSENGER_ID, cells) and len(set(cells)) == len(cells):
        return list(cells), []  # the common case, at C speed
    ids: list[str] = []
    violations: list[Violation] = []
    first: dict[str, int] = {}
    for i, cell in enumerate(cells):
        try:
            ids.append(check_passenger_id(cell))
        except RuleError as exc:
            ids.append("")
            violations.append(Violation(i, "PassengerId", exc.message))
        else:
            if ids[-1] in first:
                violations.append(
                    Violation(i, "PassengerId", f"appears more than once (first in row {first[ids[-1]] + 1})")
                )
            first.setdefault(ids[-1], i)
        if len(violations) >= limit:
            break
    return ids, violations
