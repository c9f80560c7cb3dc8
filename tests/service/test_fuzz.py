"""Property-based fuzzing of the API from its own OpenAPI schema: schemathesis, in process over ASGI, seeded."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.config import Settings
from service.main import create_app

# Every response: no 5xx, a documented status, the documented content type, headers and body schema.
BASE_CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# JSON bodies have an exact schema, so its verdict must also match the server's: valid -> 2xx, invalid -> 4xx.
STRICT_CHECKS = [*BASE_CHECKS, positive_data_acceptance, negative_data_rejection]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


@dataclass(frozen=True)
class Plan:
    """One fuzzed slice: an operation, a body type, valid or invalid data, and how many cases."""

    method: str
    path: str
    mode: GenerationMode
    examples: int
    # "schema": bodies as the schema describes them; "csv"/"json": hostile-but-plausible bodies drawn below.
    bodies: str = "schema"
    # Operations without inputs have one distinct request; Hypothesis stops once it has sent it.
    min_cases: int | None = None

    @property
    def minimum(self) -> int:
        """Cases that must have been sent: all of them, unless the operation has fewer distinct requests."""
        return self.examples if self.min_cases is None else self.min_cases

    @property
    def id(self) -> str:
        """A readable test id."""
        body = "" if self.bodies == "schema" else f" {self.bodies}-bodies"
        return f"{self.method} {self.path}{body} {self.mode.value}"


PLANS = [
    # The schema offers JSON and text/csv bodies; schemathesis picks one per case.
    Plan("POST", "/predict", POSITIVE, 350),
    Plan("POST", "/predict", NEGATIVE, 300),
    Plan("POST", "/predict", POSITIVE, 150, bodies="csv"),
    Plan("POST", "/predict", POSITIVE, 200, bodies="json"),
    Plan("GET", "/models/{name}", POSITIVE, 20, min_cases=2),
    Plan("GET", "/models/{name}", NEGATIVE, 60),
    *(Plan("GET", p, POSITIVE, 5, min_cases=1) for p in ("/health", "/ready", "/models", "/metrics")),
    Plan("GET", "/metrics/prometheus", POSITIVE, 5, min_cases=1),
]

# CSV cells: good values, edge values and junk, so rows reach the per-cell validation, not only the header check.
CELLS = st.one_of(
    st.sampled_from(["1", "2", "3", "0", "4", "-1", "2.5", "", " 3 ", "nan", "inf", "1e999", "1e308", "abc"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.text(max_size=12),
)
HEADERS = st.sampled_from(
    [
        ["PassengerId", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"],
        ["Pclass", "Fare", "Age"],
        ["pclass", "fare", "age", "PassengerId"],
        ["Pclass", "Fare"],
    ]
)


# JSON: the right keys (and Kaggle's, and typos) with good, edge and wrong-typed values, single or in batches
# (finite floats only: NaN and Infinity are not JSON, the client could not send them; test_hostile.py does).
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(["pclass", "fare", "age", "Pclass", "Fare", "Age", "Name", "PassengerId", "agee", "passengers"])
VALUES = st.sampled_from([1, 2, 3, 0, 4, 2.5, 7.25, 22, 120, 121, 0.0, -1, 1e308, 1e-300, None, True, "3", ""])
PASSENGERS = st.dictionaries(KEYS | st.text(max_size=6), VALUES | JSON_VALUES, max_size=5)
JSON_BODIES = PASSENGERS | st.fixed_dictionaries({"passengers": st.lists(PASSENGERS | JSON_VALUES, max_size=5)})


@st.composite
def csv_bodies(draw: st.DrawFn) -> str:
    """A Kaggle-style CSV with hypothesis-chosen cells (and the odd ragged row)."""
    header = draw(HEADERS)
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@st.composite
def valid_csv_bodies(draw: st.DrawFn) -> str:
    """A CSV whose every row the rules accept, so that a positive plan reaches a 200 whatever else is drawn."""
    row = st.tuples(
        st.sampled_from(["1", "2", "3"]),
        st.floats(min_value=0, max_value=512).map(lambda fare: f"{fare:.2f}"),
        st.one_of(st.just(""), st.floats(min_value=0.5, max_value=120).map(lambda age: f"{age:.1f}")),
    )
    rows = draw(st.lists(row, min_size=1, max_size=6))
    return "Pclass,Fare,Age\n" + "".join(f"{pclass},{fare},{age}\n" for pclass, fare, age in rows)


@pytest.fixture(scope="module")
def schema(model_dir: Path) -> Any:
    """The app's OpenAPI schema, loaded in process; requests go to the same app, its lifespan started once."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(model_dir=model_dir)))


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.id)
def test_fuzz_operation(schema: Any, plan: Plan) -> None:
    operation = schema[plan.path][plan.method]
    strategy = operation.as_strategy(generation_mode=plan.mode)
    bodies = {"schema": st.none(), "csv": csv_bodies() | valid_csv_bodies(), "json": JSON_BODIES}[plan.bodies]
    calls = 0
    statuses: set[int] = set()

    # derandomize: the same cases on every run of the same code and test selection (Hypothesis also mixes in
    # constants from the loaded local modules); bounded by max_examples, no deadline on a loaded machine.
    @given(case=strategy, body=bodies)
    @settings(
        max_examples=plan.examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def fuzz(case: Any, body: object) -> None:
        nonlocal calls
        if plan.bodies != "schema":
            case.media_type, case.body = ("text/csv" if plan.bodies == "csv" else "application/json"), body
        calls += 1
        # A text/csv body is any string to the schema, so only the server can say which ones are valid; bodies
        # drawn here are neither marked valid nor invalid, so they get the base checks too.
        strict = plan.bodies == "schema" and case.media_type == "application/json"
        response = case.call_and_validate(checks=STRICT_CHECKS if strict else BASE_CHECKS)
        statuses.add(response.status_code)

    fuzz()
    print(f"{plan.id}: {calls} cases, statuses {sorted(statuses)}")
    assert calls >= plan.minimum
    # The cases reached the service's validation, not only its front door: valid data was answered and, where
    # the plan sends invalid or hostile data, refused field by field.
    if plan.path == "/predict":
        if plan.mode == POSITIVE:
            assert 200 in statuses
        if plan.mode == NEGATIVE or plan.bodies != "schema":
            assert 422 in statuses
