"""The input rules, differentially: every path that reads a passenger accepts the same values, produces the same
numbers and refuses the same values naming the same field with the same rule.

The paths: the trainer's CSV loader, the service's CSV reader, its JSON reader (one passenger, and a batch,
which tries the vectorised fast path first), the API's pydantic model, the vectorised check for float64
columns (the Open Inference Protocol route's), and, for the hand-written edge cells, the HTTP answer.
A text cell's JSON counterpart is the cell itself as a JSON literal when it is one (an empty cell is null),
else the cell as a JSON string.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from support.answers import answers
from support.app import app_client

from service.config import Settings
from service.csv_input import parse_csv
from service.errors import ApiError
from service.json_input import parse_json, plainly_valid_rows
from service.main import create_app
from service.schemas import Passenger
from survival.rules import FIELDS, RULES, check_array
from training.data import DataError, load_csv

GOOD: Final[dict[str, str]] = {"pclass": "2", "fare": "13.5", "age": "30"}
JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Edge cells: signs, spaces, underscores, exponents, hex, nan/inf, -0, decimal commas, leading zeros, digits of
# other scripts (full-width, Arabic-Indic, Devanagari, superscript), empty, very long.
EDGE_CELLS: Final[tuple[str, ...]] = (
    "1", "2", "3", "0", "4", "-1", "+1", "+3", " 3 ", "\t2\t", "3 ", "\u00a03", "\u30003",
    "1_0", "7_25", "1__0", "1e0", "1E0", "3e0", "1e2", "7.25e0", "7.25E+1", "1e-400", "1e999", "-1e999", "1e308",
    "0x10", "0X1", "0b1", "0o7", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-0", "-0.0", "0.0", "-0e0",
    "7,25", "1,000", "007", "00", "03", "0.5", ".5", "5.", "1.", "-.5", "3.0", "2.5", "1.0000000000000002",
    "\uff13", "\uff17.\uff12\uff15", "\u0663", "\u0667", "\u0969", "\u00b3", "\u0663.\u0665",
    "", " ", "\t", "true", "null", "3a", "a3", "--1", "1-", "1e", "e1", "1..0", "1.2.3",
    "7" * 400, "1" + "0" * 400, "0." + "0" * 300 + "1", "7." + "2" * 500, "3" * 4000,
)  # fmt: skip
ANY_OUTCOME = tuple[str, object, str]  # ("ok", number, "") or ("refused", field, rule statement)


def outcome_ok(number: float) -> tuple[str, object, str]:
    """An accepted value; NaN (missing) compared as the string 'missing' so that outcomes compare with ==."""
    return ("ok", "missing" if math.isnan(number) else number.hex(), "")


def refused(field: str, message: str) -> tuple[str, object, str]:
    """A refusal: the field (case-insensitive) and the rule's statement (the message before what was received)."""
    return ("refused", field.lower(), message.split(" (", 1)[0])


def json_literal(cell: str) -> str:
    """The JSON counterpart of a text cell."""
    stripped = cell.strip(" \t")
    if not stripped:
        return "null"
    return stripped if JSON_NUMBER.fullmatch(stripped) else json.dumps(cell)


def csv_body(field: str, cell: str) -> bytes:
    """A one-row CSV with `cell` in `field`'s column and good values elsewhere."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([RULES[f].column for f in FIELDS])
    writer.writerow([cell if f == field else GOOD[f] for f in FIELDS])
    return out.getvalue().encode()


def json_object(field: str, cell: str) -> str:
    """The JSON passenger with `cell`'s counterpart in `field`."""
    return "{" + ",".join(f'"{f}":{json_literal(cell) if f == field else GOOD[f]}' for f in FIELDS) + "}"


def via_service_csv(field: str, cell: str) -> tuple[str, object, str]:
    """The service's CSV reader."""
    try:
        raw, _ = parse_csv(csv_body(field, cell), max_batch=10)
    except ApiError as exc:
        return api_refusal(exc, row=1)
    return outcome_ok(float(raw[0, FIELDS.index(field)]))


def api_refusal(exc: ApiError, **where: int | None) -> tuple[str, object, str]:
    """A 422 naming one problem, at the given row or index."""
    assert exc.status == 422, exc.detail
    (error,) = exc.errors
    for key, value in where.items():
        assert getattr(error, key) == value
    return refused(error.field or "", error.message)


def via_trainer(field: str, cell: str, tmp_path: Path) -> tuple[str, object, str]:
    """The trainer's loader (pandas), on a file with the cell in its first row and enough good rows to split."""
    body = csv_body(field, cell).decode()
    header, row = body.split("\n")[:2]
    good = ",".join(GOOD[f] for f in FIELDS)
    lines = [f"Survived,{header}", f"0,{row}"] + [f"{i % 2},{good}" for i in range(12)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        dataset = load_csv(path)
    except DataError as exc:
        message = str(exc)
    else:
        return outcome_ok(float(dataset.raw[0, FIELDS.index(field)]))
    match = re.fullmatch(rf"{re.escape(str(path))}: column (\w+), row 1: (.*)", message, flags=re.S)
    assert match is not None, message
    return refused(match[1], match[2])


def via_json(field: str, cell: str, *, batch: bool) -> tuple[str, object, str]:
    """The service's JSON reader, one passenger or inside a batch of plainly valid companions."""
    obj = json_object(field, cell)
    companion = '{"pclass":1,"fare":80,"age":40}'
    body = f'{{"passengers":[{companion},{obj},{companion}]}}' if batch else obj
    try:
        raw = parse_json(body.encode(), max_batch=10)
    except ApiError as exc:
        return api_refusal(exc, index=1 if batch else None)
    return outcome_ok(float(raw[1 if batch else 0, FIELDS.index(field)]))


def via_pydantic(field: str, cell: str) -> tuple[str, object, str]:
    """The API's documented model."""
    try:
        passenger = Passenger.model_validate(json.loads(json_object(field, cell)))
    except ValidationError as exc:
        (error,) = exc.errors()
        return refused(str(error["loc"][-1]), str(error["msg"]).removeprefix("Value error, "))
    value = getattr(passenger, field)
    return outcome_ok(math.nan if value is None else float(value))


def outcomes(field: str, cell: str, tmp_path: Path) -> dict[str, tuple[str, object, str]]:
    """Every path's verdict on one cell."""
    found = {
        "service csv": via_service_csv(field, cell),
        "trainer csv": via_trainer(field, cell, tmp_path),
        "json single": via_json(field, cell, batch=False),
        "json batch": via_json(field, cell, batch=True),
        "pydantic": via_pydantic(field, cell),
    }
    kind, number, _ = found["service csv"]
    if kind == "ok":
        # The vectorised check (float64 columns, NaN = missing) agrees on the number it was given.
        value = math.nan if number == "missing" else float.fromhex(str(number))
        checked, violations = check_array(field, np.array([value]), limit=5)
        found["float64 column"] = refused(field, violations[0].message) if violations else outcome_ok(float(checked[0]))
        # The fast path, where it takes the batch, gives exactly the item path's numbers.
        items = [json.loads('{"pclass":1,"fare":80,"age":40}'), json.loads(json_object(field, cell))]
        fast = plainly_valid_rows(items)
        if fast is not None:
            found["json fast path"] = outcome_ok(float(fast[1, FIELDS.index(field)]))
    return found


def assert_all_agree(field: str, cell: str, tmp_path: Path) -> None:
    """One verdict for the cell on every path."""
    found = outcomes(field, cell, tmp_path)
    assert len(set(found.values())) == 1, f"{field} = {cell[:60]!r}: {found}"


@pytest.mark.parametrize("field", FIELDS)
def test_every_path_agrees_on_the_edge_cells(field: str, tmp_path: Path) -> None:
    for cell in EDGE_CELLS:
        assert_all_agree(field, cell, tmp_path)


def test_the_edge_cells_meet_the_rules_as_documented(tmp_path: Path) -> None:
    # A few verdicts spelled out, so that "every path agrees" cannot mean "every path is wrong alike".
    accepted = {("fare", "7.25e0"): 7.25, ("fare", "-0"): 0.0, ("fare", " 3 "): 3.0, ("age", ""): "missing"}
    for (field, cell), number in accepted.items():
        want = number if number == "missing" else float(number).hex()  # type: ignore[arg-type]
        assert via_service_csv(field, cell) == ("ok", want, ""), (field, cell)
    for field, cell in [("fare", "1_0"), ("fare", "7,25"), ("fare", "\u0667"), ("fare", "\uff13"), ("fare", "nan"),
                        ("fare", "0x10"), ("fare", "007"), ("pclass", "3.0"), ("pclass", "1e0"), ("pclass", ""),
                        ("age", "-0"), ("fare", "inf")]:  # fmt: skip
        assert via_service_csv(field, cell)[0] == "refused", (field, cell)
    assert via_service_csv("pclass", "")[2] == "must be 1, 2 or 3"


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1, max_value=600).map(lambda v: f"{v:.6g}"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=-5, max_value=200).map(str),
    st.text(alphabet="0123456789+-.eE_, x\t\u0663\uff13\u0969", max_size=12),
    st.text(max_size=8),
).filter(lambda c: "\n" not in c and "\r" not in c and "\x00" not in c)


@given(field=st.sampled_from(FIELDS), cell=CELLS)
@settings(max_examples=400, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
def test_every_path_agrees_on_generated_cells(tmp_path: Path, field: str, cell: str) -> None:
    assert_all_agree(field, cell, tmp_path)


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """The real app on the session's checkpoints."""
    with app_client(model_dir) as test_client:
        yield test_client


def http_outcome(response: Any) -> tuple[int, str | None]:
    """Status and the field an error names (lower case)."""
    if response.status_code == 200:
        return 200, None
    (error,) = response.json()["errors"]
    return response.status_code, str(error["field"]).lower()


@pytest.mark.parametrize("field", FIELDS)
def test_http_json_and_csv_answer_the_edge_cells_alike(client: TestClient, field: str) -> None:
    for cell in EDGE_CELLS[:60]:
        as_json = client.post(
            "/predict", content=json_object(field, cell), headers={"content-type": "application/json"}
        )
        as_csv = client.post("/predict", content=csv_body(field, cell), headers={"content-type": "text/csv"})
        assert http_outcome(as_json) == http_outcome(as_csv), (field, cell)
        if as_json.status_code == 200:
            assert answers(as_json.json()) == answers(as_csv.json()), (field, cell)
        else:
            assert http_outcome(as_json) == (422, field)


def test_blank_lines_neither_count_nor_shift_row_numbers(client: TestClient, model_dir: Path) -> None:
    # What Python's csv module writes on Windows without newline='': every row ends in \r\r\n.
    rows = ["PassengerId,Pclass,Fare,Age"] + [f"{900 + i},3,7.25,22" for i in range(5)]
    rows[4] = "903,3,7_25,22"
    body = "\r\r\n".join(rows) + "\r\r\n"
    response = client.post("/predict", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["row"] == 4
    assert response.json()["errors"][0]["passenger_id"] == "903"
    limited = TestClient(create_app(Settings(model_dir=model_dir, max_batch_size=5)))
    with limited:
        rows[4] = "903,3,7.25,22"
        ok = limited.post("/predict", content="\r\r\n".join(rows) + "\r\r\n", headers={"content-type": "text/csv"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["passenger_ids"] == [str(900 + i) for i in range(5)]
