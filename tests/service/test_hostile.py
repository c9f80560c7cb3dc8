"""Hostile requests against the real app: each gets a specific 4xx and a JSON message naming the problem."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from fastapi.testclient import TestClient
from support.answers import answers
from support.app import app_client

from service.config import Settings
from service.errors import MAX_ERRORS_LISTED
from service.main import create_app
from survival.rules import ECHO_CHARS, RULES

if TYPE_CHECKING:
    from httpx2 import Response  # what Starlette's TestClient returns

JSON: Final = "application/json"
CSV: Final = "text/csv"
# Defaults of service/config.py, so the limits tested are the ones served.
MAX_BATCH: Final = Settings().max_batch_size
MAX_BODY: Final = Settings().max_body_bytes
CSV_FIELD_LIMIT: Final = 131_072  # Python's csv.field_size_limit() default
# Whatever goes wrong, an error body says nothing about the server's insides.
LEAKS: Final = ("Traceback", 'File "', "/tmp", "/work", "/home", "/usr", ".py", "site-packages", "pydantic.dev")
PCLASS_RULE: Final = RULES["pclass"].statement
FARE_RULE: Final = RULES["fare"].statement
AGE_RULE: Final = RULES["age"].statement
KAGGLE_ROW: Final = {
    "PassengerId": 892,
    "Survived": 0,
    "Pclass": 3,
    "Name": "Kelly, Mr. James",
    "Sex": "male",
    "Age": 34.5,
    "SibSp": 0,
    "Parch": 0,
    "Ticket": "330911",
    "Fare": 7.8292,
    "Cabin": None,
    "Embarked": "Q",
}


NULL: Final = object()


def passenger(**fields: Any) -> bytes:
    """A JSON passenger: pclass 3, fare 7.25, age 22, overridden (None drops a field, NULL sends null)."""
    base: dict[str, Any] = {"pclass": 3, "fare": 7.25, "age": 22}
    base.update(fields)
    return json.dumps({k: (None if v is NULL else v) for k, v in base.items() if v is not None}).encode()


def batch(n: int, item: bytes = b'{"pclass":1,"fare":10.5}') -> bytes:
    """A JSON batch of `n` copies of `item`, built as bytes (10,001 items stay cheap)."""
    return b'{"passengers":[' + b",".join([item] * n) + b"]}"


def chunks(total: int, size: int = 64 * 1024) -> Callable[[], Iterator[bytes]]:
    """A body factory that streams `total` bytes with no Content-Length (chunked transfer encoding)."""

    def stream() -> Iterator[bytes]:
        sent = 0
        while sent < total:
            piece = min(size, total - sent)
            sent += piece
            yield b" " * piece

    return stream


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the exact answer it must get."""

    id: str
    body: bytes | Callable[[], Iterator[bytes]] | None
    status: int
    detail: tuple[str, ...]
    content_type: str | None = JSON
    fields: tuple[str, ...] | None = None  # the `errors[].field` values, in order, when the problem is per field
    method: str = "POST"
    path: str = "/predict"
    headers: dict[str, str] = field(default_factory=dict)


CASES: Final[list[Hostile]] = [
    # --- JSON syntax
    Hostile("json-truncated", b'{"pclass": 3, "fare": ', 400, ("malformed JSON", "Expecting value")),
    Hostile("json-trailing-garbage", passenger() + b" x", 400, ("malformed JSON", "Extra data")),
    Hostile("json-single-quotes", b"{'pclass': 3, 'fare': 1}", 400, ("malformed JSON", "double quotes")),
    Hostile("json-empty-body", b"", 400, ("malformed JSON", "body is empty")),
    Hostile("json-whitespace-body", b" \n\t ", 400, ("malformed JSON", "body is empty")),
    Hostile("json-NaN", b'{"pclass": 3, "fare": NaN}', 400, ("malformed JSON", "NaN is not a number JSON allows")),
    Hostile("json-Infinity", b'{"pclass": 3, "fare": Infinity}', 400, ("Infinity is not a number JSON allows",)),
    Hostile("json-minus-Infinity", b'{"pclass": 3, "age": -Infinity, "fare": 1}', 400, ("-Infinity is not a number",)),
    Hostile("json-duplicate-key", b'{"pclass": 3, "pclass": 1, "fare": 1}', 400, ("duplicate key 'pclass'",)),
    Hostile("json-duplicate-key-in-batch", batch(2, b'{"pclass":1,"fare":1,"fare":2}'), 400, ("duplicate key 'fare'",)),
    Hostile("json-not-utf8", b'{"pclass": 3, "fare": 1, "Name": "\xff"}', 400, ("malformed JSON", "not UTF-8")),
    Hostile("json-utf8-bom", b"\xef\xbb\xbf" + passenger(), 400, ("malformed JSON", "byte order mark")),
    Hostile("json-utf16-bom", '{"pclass": 3, "fare": 1}'.encode("utf-16"), 400, ("malformed JSON", "UTF-16")),
    Hostile("json-utf16-no-bom", '{"pclass": 3}'.encode("utf-16-le"), 400, ("malformed JSON", "UTF-16 or UTF-32")),
    Hostile("json-utf32-bom", '{"pclass": 3}'.encode("utf-32"), 400, ("malformed JSON", "UTF-32")),
    Hostile("json-nested-too-deep", b"[" * 100_000 + b"]" * 100_000, 400, ("malformed JSON", "nested too deeply")),
    Hostile(
        "json-5000-digit-integer", b'{"pclass": 3' + b"0" * 5000 + b', "fare": 1}', 400, ("more than 4300 digits",)
    ),
    Hostile("json-top-level-array", b'[{"pclass": 3, "fare": 1}]', 422, ("must be a JSON object", "got an array")),
    Hostile("json-top-level-string", b'"3,7.25,22"', 422, ("must be a JSON object", "got a string")),
    Hostile("json-top-level-null", b"null", 422, ("must be a JSON object", "got null")),
    # --- numbers out of range or not numbers
    Hostile("fare-1e308", passenger(fare=1e308), 422, (FARE_RULE, "got 1e+308"), fields=("fare",)),
    Hostile("fare-1e999", b'{"pclass": 3, "fare": 1e999}', 422, (FARE_RULE, "got inf"), fields=("fare",)),
    Hostile("fare-negative", passenger(fare=-0.01), 422, (FARE_RULE, "got -0.01"), fields=("fare",)),
    Hostile("fare-string", passenger(fare="7.25"), 422, (FARE_RULE, "got a string: '7.25'"), fields=("fare",)),
    Hostile("fare-boolean", passenger(fare=False), 422, (FARE_RULE, "got a boolean"), fields=("fare",)),
    Hostile(
        "fare-nested-object", passenger(fare={"amount": 7.25}), 422, (FARE_RULE, "got an object"), fields=("fare",)
    ),
    Hostile("pclass-boolean", passenger(pclass=True), 422, (PCLASS_RULE, "got a boolean"), fields=("pclass",)),
    Hostile("pclass-string", passenger(pclass="3"), 422, (PCLASS_RULE, "got a string: '3'"), fields=("pclass",)),
    Hostile("pclass-null", passenger(pclass=NULL), 422, (PCLASS_RULE, "it is missing"), fields=("pclass",)),
    Hostile("pclass-0", passenger(pclass=0), 422, (PCLASS_RULE + " (got 0)",), fields=("pclass",)),
    Hostile("pclass-4", passenger(pclass=4), 422, (PCLASS_RULE + " (got 4)",), fields=("pclass",)),
    Hostile("pclass-2.5", passenger(pclass=2.5), 422, (PCLASS_RULE, "got 2.5, not an integer"), fields=("pclass",)),
    Hostile("pclass-3.0", passenger(pclass=3.0), 422, (PCLASS_RULE, "got 3.0, not an integer"), fields=("pclass",)),
    Hostile("pclass-list", passenger(pclass=[3]), 422, (PCLASS_RULE, "got an array"), fields=("pclass",)),
    Hostile("pclass-missing", passenger(pclass=None), 422, (PCLASS_RULE + " (it is missing)",), fields=("pclass",)),
    Hostile(
        "pclass-two-spellings",
        b'{"pclass": 3, "Pclass": 1, "fare": 1}',
        422,
        ("pclass, Pclass: given twice, as 'pclass' and 'Pclass'",),
        fields=("pclass, Pclass",),
    ),
    Hostile("age-0", passenger(age=0), 422, (AGE_RULE, "got 0"), fields=("age",)),
    Hostile("age-121", passenger(age=121), 422, (AGE_RULE, "got 121"), fields=("age",)),
    Hostile("age-string", passenger(age="22"), 422, (AGE_RULE, "got a string: '22'"), fields=("age",)),
    Hostile("empty-object", b"{}", 422, ("pclass: must be 1, 2 or 3 (it is missing)",), fields=("pclass",)),
    # --- unknown fields: rejected, except Kaggle's own columns, which are ignored (see test below)
    Hostile("unknown-field-typo", passenger(agee=30), 422, ("agee: unknown field",), fields=("agee",)),
    Hostile(
        "unknown-field-among-kaggle-columns",
        json.dumps({**KAGGLE_ROW, "Fare_usd": 9.1}).encode(),
        422,
        ("Fare_usd: unknown field",),
        fields=("Fare_usd",),
    ),
    Hostile(
        "unknown-top-level-field-next-to-batch",
        b'{"passengers": [{"pclass": 1, "fare": 1}], "model": "plain"}',
        422,
        ("model: unknown field",),
        fields=("model",),
    ),
    # --- batches
    Hostile("batch-empty", b'{"passengers": []}', 422, ("passengers", "at least 1 item"), fields=("passengers",)),
    Hostile("batch-not-a-list", b'{"passengers": {"pclass": 1}}', 422, ("passengers", "must be an array")),
    Hostile(
        "batch-bad-item-named-by-index",
        b'{"passengers": [{"pclass": 1, "fare": 1}, {"pclass": 1, "fare": 1}, {"pclass": 1, "fare": -5}]}',
        422,
        ("passengers[2]: fare", "got -5"),
        fields=("fare",),
    ),
    Hostile("batch-over-limit", batch(MAX_BATCH + 1), 413, (f"{MAX_BATCH + 1} passengers", f"limit of {MAX_BATCH}")),
    # --- size limits
    Hostile("body-over-limit-content-length", b" " * (MAX_BODY + 1), 413, (f"{MAX_BODY + 1} bytes", "over the limit")),
    Hostile(
        "body-over-limit-chunked", chunks(MAX_BODY + 1), 413, (f"request body is over the limit of {MAX_BODY} bytes",)
    ),
    # --- content types and negotiation
    Hostile("content-type-text-plain", passenger(), 415, ("text/plain is not supported",), content_type="text/plain"),
    Hostile("content-type-missing", passenger(), 415, ("Content-Type none is not supported",), content_type=None),
    Hostile(
        "content-type-form",
        b"pclass=3&fare=7.25",
        415,
        ("application/x-www-form-urlencoded is not supported",),
        content_type="application/x-www-form-urlencoded",
    ),
    Hostile("content-type-xml", b"<p/>", 415, ("application/xml is not supported",), content_type="application/xml"),
    Hostile("csv-answer-for-json", passenger(), 406, ("Accept: text/csv", "PassengerId"), headers={"accept": CSV}),
    Hostile(
        "unknown-model",
        passenger(),
        422,
        ("model", "'batchnorm' or 'plain'"),
        fields=("model",),
        path="/predict?model=x",
    ),
    Hostile(
        "unknown-query-parameter",
        passenger(),
        422,
        ("Model: unknown query parameter",),
        fields=("Model",),
        path="/predict?Model=plain",
    ),
    Hostile("accept-nothing-offered", passenger(), 406, ("allows none", "text/csv"), headers={"accept": "text/html"}),
    Hostile(
        "accept-q0-refuses-json",
        passenger(),
        406,
        ("allows none",),
        headers={"accept": "application/json;q=0, */*;q=0"},
    ),
    Hostile(
        "metrics-accept-q0",
        None,
        406,
        ("allows none", "text/html"),
        None,
        method="GET",
        path="/metrics",
        headers={"accept": "text/html;q=0, application/json;q=0"},
    ),
    # --- CSV
    Hostile("csv-empty", b"", 422, ("CSV body is empty",), content_type=CSV),
    Hostile("csv-header-only", b"PassengerId,Pclass,Fare,Age\n", 422, ("no data rows",), content_type=CSV),
    Hostile("csv-missing-column", b"Pclass,Fare\n3,7.25\n", 422, ("lacks column(s) Age",), CSV, fields=("Age",)),
    Hostile("csv-no-known-column", b"a,b\n1,2\n", 422, ("Pclass, Fare, Age",), CSV, fields=("Pclass", "Fare", "Age")),
    Hostile("csv-repeated-column", b"Pclass,Fare,Age,Pclass\n3,7,22,1\n", 422, ("repeats", "Pclass"), CSV),
    Hostile("csv-ragged-row", b"Pclass,Fare,Age\n3,7.25,22\n1,80\n", 422, ("row 2", "2 fields, the header has 3"), CSV),
    Hostile("csv-not-utf8", b"Pclass,Fare,Age\n3,7.25,\xe9\n", 400, ("not UTF-8", "offset 23"), CSV),
    Hostile("csv-unterminated-quote", b'Pclass,Fare,Age\n3,7.25,"22\n', 422, ("malformed", "unexpected end"), CSV),
    Hostile(
        "csv-enormous-field",
        b'Pclass,Fare,Age\n3,7.25,"' + b"9" * (CSV_FIELD_LIMIT + 10) + b'"\n',
        422,
        ("malformed", "field larger than field limit"),
        CSV,
    ),
    Hostile(
        "csv-pclass-2.5", b"Pclass,Fare,Age\n2.5,7.25,22\n", 422, ("row 1: Pclass", "not an integer"), CSV, ("Pclass",)
    ),
    Hostile("csv-pclass-unicode-digit", "Pclass,Fare,Age\n³,7,22\n".encode(), 422, ("Pclass",), CSV, ("Pclass",)),
    Hostile(
        "csv-pclass-5000-digits", b"Pclass,Fare,Age\n" + b"3" * 5000 + b",7,22\n", 422, ("Pclass",), CSV, ("Pclass",)
    ),
    Hostile(
        "csv-pclass-missing-names-passenger",
        b"PassengerId,Pclass,Fare,Age\n1044,,7,60.5\n",
        422,
        ("PassengerId 1044", "Pclass: must be 1, 2 or 3 (it is missing)"),
        CSV,
        ("Pclass",),
    ),
    Hostile("csv-fare-nan", b"Pclass,Fare,Age\n3,nan,22\n", 422, ("Fare", "got 'nan', not a number"), CSV, ("Fare",)),
    Hostile("csv-fare-underscore", b"Pclass,Fare,Age\n3,7_25,22\n", 422, ("Fare", "got '7_25'"), CSV, ("Fare",)),
    Hostile(
        "csv-fare-arabic-digits",
        "Pclass,Fare,Age\n3,\u0667,22\n".encode(),
        422,
        ("Fare", "got '\u0667'"),
        CSV,
        ("Fare",),
    ),
    Hostile("csv-age-text", b"Pclass,Fare,Age\n3,7.25,young\n", 422, ("Age: must be", "got 'young'"), CSV, ("Age",)),
    Hostile("csv-age-121", b"Pclass,Fare,Age\n3,7.25,121\n", 422, ("Age", "got '121'"), CSV, ("Age",)),
    *(
        Hostile(
            f"csv-passenger-id-{name}",
            b"PassengerId,Pclass,Fare,Age\n" + cell + b",3,7.25,22\n",
            422,
            ("row 1", "PassengerId: must be 1 to 64 letters, digits", "formula"),
            CSV,
            ("PassengerId",),
        )
        for name, cell in (
            ("formula-equals", b'"=HYPERLINK(""http://x"")"'),
            ("formula-plus", b"+1"),
            ("formula-minus", b"-1"),
            ("formula-at", b"@SUM(A1)"),
            ("tab", b'"\t=1"'),
            ("carriage-return", b'"\r=1"'),
            ("control-character", b'"89\x072"'),
            ("empty", b""),
        )
    ),
    Hostile(
        "csv-duplicate-passenger-id",
        b"PassengerId,Pclass,Fare,Age\n892,3,7.25,22\n893,1,80,\n892,2,13,30\n",
        422,
        ("row 3 (PassengerId 892): PassengerId: appears more than once (first in row 1)",),
        CSV,
        ("PassengerId",),
    ),
    Hostile(
        "csv-over-batch-limit",
        b"Pclass,Fare,Age\n" + b"3,7.25,22\n" * (MAX_BATCH + 1),
        413,
        (f"more than {MAX_BATCH} data rows",),
        CSV,
    ),
    # --- other routes
    Hostile("models-unknown-name", None, 422, ("name", "'batchnorm' or 'plain'"), None, ("name",), "GET", "/models/x"),
    Hostile("predict-by-GET", None, 405, ("Method Not Allowed",), None, method="GET"),
    Hostile("models-by-POST", passenger(), 405, ("Method Not Allowed",), method="POST", path="/models/plain"),
    Hostile("unknown-route", None, 404, ("Not Found",), None, method="GET", path="/predict/batch"),
]


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """The real app with its default limits, lifespan included, on the session's real checkpoints."""
    with app_client(model_dir, raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: TestClient, case: Hostile) -> Response:
    """Send one hostile request as the case describes it."""
    headers = dict(case.headers)
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    body = case.body() if callable(case.body) else case.body
    return client.request(case.method, case.path, content=body, headers=headers)


def assert_clean_error(response: Response) -> dict[str, Any]:
    """The error body is JSON with a `detail`, and leaks no traceback or file system path."""
    assert response.headers["content-type"] == JSON
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    for leak in LEAKS:
        assert leak not in response.text, f"error body leaks {leak!r}: {response.text[:300]}"
    return body


def test_hostile_requests_leave_the_service_answering_as_before(client: TestClient) -> None:
    before = client.post("/predict", json={"passengers": [{"pclass": 1, "fare": 80, "age": 40}, KAGGLE_ROW]})
    statuses = {send(client, case).status_code for case in CASES}
    after = client.post("/predict", json={"passengers": [{"pclass": 1, "fare": 80, "age": 40}, KAGGLE_ROW]})
    assert statuses <= {400, 404, 405, 406, 413, 415, 422}
    assert before.status_code == after.status_code == 200
    assert answers(after.json()) == answers(before.json())


def test_a_body_of_many_unknown_keys_stops_at_the_first_errors_and_echoes_bounded_keys(client: TestClient) -> None:
    # Hundreds of unknown keys (the first ones long); a flood of more is refused before parsing (test_hostile_load).
    keys = {**{f"{'k' * 200}{i}": i for i in range(MAX_ERRORS_LISTED)}, **{f"k{i}": 0 for i in range(900)}}
    body = json.dumps({"pclass": 3, "fare": 7.25, **keys}).encode()
    assert len(body) < MAX_BODY
    response = client.post("/predict", content=body, headers={"content-type": JSON})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == MAX_ERRORS_LISTED
    assert "checking stopped at 20" in response.json()["detail"]
    for item in errors:
        assert item["message"].startswith("unknown field")
        assert item["field"].startswith("k" * ECHO_CHARS)
        assert len(item["field"]) < ECHO_CHARS + 30, item["field"]
    assert len(response.content) < 10_000


def test_a_long_value_is_echoed_only_as_a_prefix(client: TestClient) -> None:
    response = client.post(
        "/predict", content=f"Pclass,Fare,Age\n3,{'9' * 100_000}x,22\n", headers={"content-type": CSV}
    )
    assert response.status_code == 422
    assert len(response.content) < 1_000
    assert "(100001 characters)" in response.json()["errors"][0]["message"]


def test_head_works_where_get_does(client: TestClient) -> None:
    for path in (
        "/health",
        "/ready",
        "/models",
        "/models/plain",
        "/metrics",
        "/openapi.json",
        "/static/chart.umd.min.js",
    ):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content)), path
    assert client.head("/predict").status_code == 405


def test_a_head_is_counted_as_a_head_not_as_a_get(client: TestClient) -> None:
    def count(method: str) -> float:
        exposition = client.get("/metrics/prometheus").text
        line = f'http_requests_total{{method="{method}",route="/ready",status="200"}} '
        return sum(float(row.removeprefix(line)) for row in exposition.splitlines() if row.startswith(line))

    head, get = count("HEAD"), count("GET")
    assert client.head("/ready").status_code == 200
    assert (count("HEAD"), count("GET")) == (head + 1, get)


def test_redirects_never_point_at_the_clients_host(client: TestClient) -> None:
    root = client.get("/", headers={"host": "evil.example"}, follow_redirects=False)
    assert root.status_code in (302, 307)
    assert root.headers["location"] == "/metrics"
    # No trailing-slash redirect either (Starlette's would be built from the Host header).
    slash = client.get("/metrics/", headers={"host": "evil.example"}, follow_redirects=False)
    assert slash.status_code == 404
    assert "location" not in slash.headers


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_request_gets_a_specific_4xx_naming_the_problem(client: TestClient, case: Hostile) -> None:
    response = send(client, case)
    assert response.status_code == case.status, response.text[:500]
    body = assert_clean_error(response)
    for text in case.detail:
        assert text in body["detail"], f"{text!r} not in detail {body['detail']!r}"
    if case.fields is not None:
        assert tuple(item.get("field") for item in body["errors"]) == case.fields, body["errors"]


def test_kaggle_columns_are_accepted_and_ignored(client: TestClient) -> None:
    pasted = client.post("/predict", json=KAGGLE_ROW)
    plain = client.post("/predict", json={"pclass": 3, "fare": 7.8292, "age": 34.5})
    assert pasted.status_code == 200, pasted.text
    assert answers(pasted.json()) == answers(plain.json())


def test_csv_with_other_kaggle_columns_and_quoted_names_is_accepted(client: TestClient) -> None:
    body = (
        "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
        '892,3,"Kelly, Mr. James",male,34.5,0,0,330911,7.8292,,Q\n'
        '893,3,"Wilkes, Mrs. James (Ellen ""Nelly"" Needs)",female,,1,0,363272,7,,S\n'
    )
    response = client.post("/predict", content=body, headers={"content-type": CSV})
    assert response.status_code == 200, response.text
    assert response.json()["passenger_ids"] == ["892", "893"]


def test_limits_are_exact_at_the_boundary(client: TestClient) -> None:
    at_limit = client.post("/predict", content=batch(MAX_BATCH), headers={"content-type": JSON})
    assert at_limit.status_code == 200, at_limit.text[:300]
    assert len(at_limit.json()["predictions"]) == MAX_BATCH
    padded = passenger().ljust(MAX_BODY, b" ")
    assert client.post("/predict", content=padded, headers={"content-type": JSON}).status_code == 200


def test_client_disconnect_mid_body_is_a_4xx_not_a_logged_server_error(model_dir: Path) -> None:
    import asyncio

    from starlette.types import Message

    app = create_app(Settings(model_dir=model_dir))
    sent: list[Message] = []
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"pclass": 3,', "more_body": True},
        {"type": "http.disconnect"},
    ]
    messages = iter(chunks)

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(run())
    assert sent[0]["status"] == 400
