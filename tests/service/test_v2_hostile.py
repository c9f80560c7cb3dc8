"""The V2 routes against hostile and malformed requests: each gets its 4xx and a protocol error naming the problem.

Requests are built byte by byte here (not by a client library, which would refuse to send most of them);
then schemathesis fuzzes the V2 operations from the app's own OpenAPI schema.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.app import app_client

from service.config import Settings
from service.main import create_app

INFER = "/v2/models/batchnorm/infer"


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """The real app with small limits, so the size bounds are cheap to reach."""
    app = create_app(Settings(model_dir=model_dir, max_batch_size=100, max_body_bytes=64 * 1024))
    with TestClient(app) as test_client:
        yield test_client


def features(rows: list[list[Any]], **extra: Any) -> bytes:
    """A JSON request with one `features` input holding `rows`."""
    tensor = {"name": "features", "shape": [len(rows), 3], "datatype": "FP64", "data": rows, **extra}
    return json.dumps({"inputs": [tensor]}).encode()


def binary(values: bytes, shape: list[int], size: int | None = None) -> bytes:
    """A binary-extension body: the JSON with one FP64 `features` input, then `values`."""
    params = {"binary_data_size": len(values) if size is None else size}
    header = json.dumps({"inputs": [{"name": "features", "shape": shape, "datatype": "FP64", "parameters": params}]})
    return header.encode() + values


GOOD_ROW = struct.pack("<3d", 3, 7.25, 22)
# (id, body, extra headers, status, exact error message or a part of it)
CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("empty body", b"", {}, 400, "malformed JSON: the request is empty"),
    ("not JSON", b"{inputs", {}, 400, "malformed JSON: Expecting property name"),
    ("JSON array", b"[]", {}, 400, "the request must be a JSON object with `inputs`"),
    ("duplicate key", b'{"inputs": [], "inputs": []}', {}, 400, "duplicate key 'inputs'"),
    ("deeply nested", b"[" * 30_000 + b"]" * 30_000, {}, 400, "nested too deeply"),
    ("huge integer", b'{"id": ' + b"9" * 5000 + b"}", {}, 400, "more than 4300 digits"),
    ("no inputs", b'{"inputs": []}', {}, 400, "inputs: List should have at least 1 item"),
    (
        "four inputs",
        json.dumps(
            {"inputs": [{"name": f"x{i}", "shape": [1], "datatype": "FP64", "data": [1]} for i in range(4)]}
        ).encode(),
        {},
        400,
        "inputs: List should have at most 3 items",
    ),
    (
        "unknown field",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 7.25, 22], "dat": 1}]}',
        {},
        400,
        "inputs[0].dat: Extra inputs are not permitted",
    ),
    (
        "shape not a list",
        b'{"inputs": [{"name": "features", "shape": "1,3", "datatype": "FP64", "data": [3, 7.25, 22]}]}',
        {},
        400,
        "inputs[0].shape: Input should be a valid list",
    ),
    (
        "negative dim",
        b'{"inputs": [{"name": "features", "shape": [-1, 3], "datatype": "FP64", "data": [3, 7.25, 22]}]}',
        {},
        400,
        "inputs[0].shape[0]: Input should be greater than or equal to 0",
    ),
    (
        "boolean dim",
        b'{"inputs": [{"name": "features", "shape": [true, 3], "datatype": "FP64", "data": [3, 7.25, 22]}]}',
        {},
        400,
        "inputs[0].shape[0]: Input should be a valid integer",
    ),
    (
        "three dims",
        b'{"inputs": [{"name": "features", "shape": [1, 1, 3], "datatype": "FP64", "data": [3, 7.25, 22]}]}',
        {},
        400,
        "inputs[0].shape: List should have at most 2 items",
    ),
    (
        "huge shape",
        b'{"inputs": [{"name": "features", "shape": [100000000000, 3], "datatype": "FP64", "data": []}]}',
        {},
        413,
        "holds 300000000000 values, over the limit of 300",
    ),
    ("over max batch", features([[3, 7.25, 22]] * 101), {}, 413, "holds 303 values, over the limit of 300"),
    (
        "unsupported datatype",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "BYTES", "data": ["3", "7", "2"]}]}',
        {},
        400,
        "datatype 'BYTES' is not supported; send FP64, FP32, INT64",
    ),
    (
        "data count mismatch",
        b'{"inputs": [{"name": "features", "shape": [2, 3], "datatype": "FP64", "data": [3, 7.25, 22]}]}',
        {},
        400,
        "data holds 3 values, shape [2, 3] needs 6",
    ),
    (
        "ragged nested data",
        b'{"inputs": [{"name": "features", "shape": [2, 3], "datatype": "FP64", "data": [[3, 7.25, 22], [1, 2]]}]}',
        {},
        400,
        "nested data does not match shape [2, 3]",
    ),
    (
        "data not a list",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": 3}]}',
        {},
        400,
        "data must be an array",
    ),
    ("string in data", features([[3, "7.25", 22]]), {}, 400, "data holds a string, not a number of datatype FP64"),
    ("boolean in data", features([[True, 7.25, 22]]), {}, 400, "data holds a boolean"),
    (
        "fraction in INT64",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "INT64", "data": [3, 7.5, 22]}]}',
        {},
        400,
        "data holds a fraction, not a number of datatype INT64",
    ),
    (
        "INT64 out of range",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "INT64", "data": [3, 9'
        + b"9" * 20
        + b", 22]}]}",
        {},
        400,
        "outside the range of INT64",
    ),
    (
        "FP64 out of range",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 1'
        + b"0" * 400
        + b", 22]}]}",
        {},
        400,
        "outside the range of FP64",
    ),
    (
        "unknown input",
        b'{"inputs": [{"name": "images", "shape": [1], "datatype": "FP64", "data": [1]}]}',
        {},
        400,
        "inputs ['images'] are not this model's",
    ),
    (
        "both input forms",
        json.dumps(
            {
                "inputs": [
                    {"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 7, 22]},
                    {"name": "Age", "shape": [1], "datatype": "FP64", "data": [3]},
                ]
            }
        ).encode(),
        {},
        400,
        "are not this model's",
    ),
    (
        "duplicate input",
        json.dumps({"inputs": [{"name": "Age", "shape": [1], "datatype": "FP64", "data": [3]}] * 2}).encode(),
        {},
        400,
        "input 'Age' is given twice",
    ),
    (
        "columns of unequal length",
        json.dumps(
            {
                "inputs": [
                    {"name": "Pclass", "shape": [2], "datatype": "INT64", "data": [3, 1]},
                    {"name": "Fare", "shape": [1], "datatype": "FP64", "data": [7.0]},
                    {"name": "Age", "shape": [1], "datatype": "FP64", "data": [3]},
                ]
            }
        ).encode(),
        {},
        400,
        "must have the same length",
    ),
    (
        "features of width 2",
        b'{"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [3, 7.25]}]}',
        {},
        400,
        "has shape [1, 2], expected [N, 3]",
    ),
    (
        "zero passengers",
        b'{"inputs": [{"name": "features", "shape": [0, 3], "datatype": "FP64", "data": []}]}',
        {},
        422,
        "at least one passenger",
    ),
    ("Pclass 4", features([[4, 7.25, 22]]), {}, 422, "row 0: Pclass: must be 1, 2 or 3"),
    ("Pclass 2.5", features([[2.5, 7.25, 22]]), {}, 422, "row 0: Pclass: must be 1, 2 or 3 (got 2.5)"),
    (
        "negative fare",
        features([[3, 7.25, 22], [3, -1, 22]]),
        {},
        422,
        "row 1: Fare: must be a number in [0, 10000], or null/empty when unknown (got -1.0)",
    ),
    (
        "fare too high",
        features([[3, 1e308, 22]]),
        {},
        422,
        "row 0: Fare: must be a number in [0, 10000], or null/empty when unknown (got 1e+308)",
    ),
    (
        "age 0",
        features([[3, 7.25, 0]]),
        {},
        422,
        "row 0: Age: must be a number in (0, 120], or null/empty when unknown (got 0.0)",
    ),
    ("several problems", features([[0, -1, 200]]), {}, 422, "(and 2 more problem(s))"),
    (
        "Infinity fare",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, Infinity, 22]}]}',
        {},
        422,
        "row 0: Fare: must be a number in [0, 10000], or null/empty when unknown (got inf)",
    ),
    (
        "NaN Pclass",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [NaN, 7.25, 22]}]}',
        {},
        422,
        "row 0: Pclass: must be 1, 2 or 3 (it is missing)",
    ),
    (
        "unknown output",
        features(
            [[3, 7.25, 22]],
        )[:-1]
        + b', "outputs": [{"name": "logits"}]}',
        {},
        400,
        "unknown output 'logits'",
    ),
    (
        "output asked twice",
        features([[3, 7.25, 22]])[:-1] + b', "outputs": [{"name": "survived"}, {"name": "survived"}]}',
        {},
        400,
        "output 'survived' is asked for twice",
    ),
    (
        "binary_data not a bool",
        features([[3, 7.25, 22]])[:-1] + b', "outputs": [{"name": "survived", "parameters": {"binary_data": 1}}]}',
        {},
        400,
        "outputs[0].parameters.binary_data must be true or false",
    ),
    (
        "id not a string",
        b'{"id": 7, "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 7.25, 22]}]}',
        {},
        400,
        "id: Input should be a valid string",
    ),
    (
        "id too long",
        b'{"id": "' + b"x" * 300 + b'", "inputs": []}',
        {},
        400,
        "id: String should have at most 256 characters",
    ),
    (
        "too many parameters",
        json.dumps({"parameters": {f"p{i}": i for i in range(17)}, "inputs": []}).encode(),
        {},
        400,
        "parameters: Dictionary should have at most 16 items",
    ),
    # Triton's binary extension
    (
        "header length not a number",
        binary(GOOD_ROW, [1, 3]),
        {"inference-header-content-length": "12a"},
        400,
        "Inference-Header-Content-Length must be a number of bytes, got '12a'",
    ),
    (
        "header length past the body",
        b"{}",
        {"inference-header-content-length": "99"},
        400,
        "Inference-Header-Content-Length 99 is longer than the body (2 bytes)",
    ),
    ("header length huge", b"{}", {"inference-header-content-length": "9" * 40}, 400, "must be a number of bytes"),
    ("binary size not the shape's", binary(GOOD_ROW, [1, 3], size=16), {}, 400, ""),  # header filled in below
    ("binary runs past the end", binary(GOOD_ROW[:16], [1, 3], size=24), {}, 400, ""),
    ("binary bytes left over", binary(GOOD_ROW + b"\0" * 8, [1, 3], size=24), {}, 400, ""),
    ("binary size negative", binary(GOOD_ROW, [1, 3], size=-24), {}, 400, ""),
    (
        "binary and data both",
        b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 7, 22], '
        b'"parameters": {"binary_data_size": 24}}]}' + GOOD_ROW,
        {},
        400,
        "",
    ),
    ("binary negative fare", binary(struct.pack("<3d", 3, -2, 22), [1, 3]), {}, 422, ""),
    ("binary infinite age", binary(struct.pack("<3d", 3, 7, float("inf")), [1, 3]), {}, 422, ""),
    # transport
    (
        "form content type",
        features([[3, 7.25, 22]]),
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "Content-Type application/x-www-form-urlencoded is not supported",
    ),
    ("gzip", features([[3, 7.25, 22]]), {"content-encoding": "gzip"}, 415, "Content-Encoding gzip is not supported"),
    ("body over the limit", b" " * (64 * 1024 + 1), {}, 413, "over the limit of 65536 bytes"),
]
# The binary cases' headers and messages, where they depend on the bytes.
BINARY_EXPECTED = {
    "binary size not the shape's": "binary_data_size 16 does not match shape [1, 3] of FP64 (24 bytes)",
    "binary runs past the end": "binary data runs past the end of the body (16 bytes left)",
    "binary bytes left over": "8 bytes of binary data after the JSON are claimed by no input",
    "binary size negative": "binary_data_size must be a whole number of bytes",
    "binary and data both": "give either data or binary_data_size, not both",
    "binary negative fare": "row 0: Fare: must be a number in [0, 10000], or null/empty when unknown (got -2.0)",
    "binary infinite age": "row 0: Age: must be a number in (0, 120], or null/empty when unknown (got inf)",
}


def header_length(body: bytes) -> str:
    """Where the JSON object at the start of `body` ends."""
    _, end = json.JSONDecoder().raw_decode(body.decode("latin-1"))
    return str(end)


@pytest.mark.parametrize(("name", "body", "headers", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_v2_infer_refuses_hostile_requests(
    client: TestClient, name: str, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    if name in BINARY_EXPECTED:
        headers = {"inference-header-content-length": header_length(body)}
        message = BINARY_EXPECTED[name]
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert list(error) == ["error"]
    assert message in error["error"]
    assert "Traceback" not in error["error"]
    assert len(error["error"]) < 500  # never an echo of the hostile input


def test_v2_infer_accepts_no_content_type_fp32_int64_nested_and_flat(client: TestClient) -> None:
    rows: list[list[Any]] = [[3, 7.25, 22], [1, 71.25, None], [2, 13, 30.5], [2, None, 30.5], [1, None, None]]
    expected = client.post(
        "/predict?model=batchnorm",
        json={"passengers": [{"pclass": p, "fare": f, "age": a} for p, f, a in rows]},
    )
    want = [p["batchnorm"]["survival_probability"] for p in expected.json()["predictions"]]
    flat = json.dumps(
        {
            "inputs": [
                {"name": "features", "shape": [5, 3], "datatype": "FP32", "data": [v for row in rows for v in row]}
            ]
        }
    ).encode()
    for body in (features(rows), flat):
        response = client.post(INFER, content=body)  # no Content-Type at all
        assert response.status_code == 200, response.text
        (probability,) = (o for o in response.json()["outputs"] if o["name"] == "survival_probability")
        assert probability["data"] == want  # 7.25, 71.25, 13 and the ages are exact in FP32; null: filled
    ints = json.dumps(
        {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "INT64", "data": [[3, 7, 22]]}]}
    ).encode()
    response = client.post(INFER, content=ints, headers={"content-type": "application/json"})
    assert response.status_code == 200
    (head, *_) = client.post("/predict?model=batchnorm", json={"pclass": 3, "fare": 7, "age": 22}).json()["predictions"]
    assert response.json()["outputs"][0]["data"] == [head["batchnorm"]["survival_probability"]]


def test_v2_binary_answer_splits_at_the_header_length(client: TestClient) -> None:
    rows = np.array([[3, 7.25, 22], [1, 80.0, np.nan]], dtype="<f8")
    header = json.dumps(
        {
            "id": "b1",
            "inputs": [
                {"name": "features", "shape": [2, 3], "datatype": "FP64", "parameters": {"binary_data_size": 48}}
            ],
            "outputs": [
                {"name": "survived", "parameters": {"binary_data": True}},
                {"name": "survival_probability", "parameters": {"binary_data": True}},
            ],
        }
    ).encode()
    response = client.post(
        INFER, content=header + rows.tobytes(), headers={"inference-header-content-length": str(len(header))}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:length])
    assert answer["id"] == "b1"
    assert [o["name"] for o in answer["outputs"]] == ["survived", "survival_probability"]  # the order asked for
    assert [o["parameters"]["binary_data_size"] for o in answer["outputs"]] == [2, 16]
    survived = np.frombuffer(response.content[length : length + 2], dtype=np.bool_)
    probs = np.frombuffer(response.content[length + 2 :], dtype="<f8")
    assert np.array_equal(survived, probs >= 0.5)
    json_answer = client.post(INFER, content=features(rows.tolist())).json()
    assert probs.tolist() == json_answer["outputs"][0]["data"]


def test_v2_errors_before_the_models_load(model_dir: Path) -> None:
    cold = app_client(model_dir)  # no `with`: the lifespan never ran
    assert cold.get("/v2/health/live").status_code == 200
    assert cold.get("/v2/health/ready").status_code == 503
    response = cold.get("/v2/models/batchnorm/ready")
    assert response.status_code == 503
    assert response.json() == {"error": "models are not loaded yet"}
    assert cold.post(INFER, content=features([[3, 7.25, 22]])).status_code == 503


def test_v2_unknown_model_and_version_are_404(client: TestClient) -> None:
    assert client.get("/v2/models/resnet").json() == {"error": "unknown model 'resnet'; served: batchnorm, plain"}
    for path in ("/v2/models/resnet", "/v2/models/plain/versions/1", "/v2/models/plain/versions/1/ready"):
        assert client.get(path).status_code == 404
    assert client.post("/v2/models/plain/versions/1/infer", content=features([[3, 7.25, 22]])).status_code == 404
    version = client.get("/models/plain").json()["version"]
    assert client.get(f"/v2/models/plain/versions/{version}/ready").status_code == 200


V2_OPERATIONS = [
    ("POST", "/v2/models/{name}/infer", 300),
    ("POST", "/v2/models/{name}/versions/{version}/infer", 60),
    ("GET", "/v2/models/{name}", 30),
    ("GET", "/v2/models/{name}/versions/{version}/ready", 30),
]


@pytest.mark.parametrize(("method", "path", "examples"), V2_OPERATIONS, ids=[f"{m} {p}" for m, p, _ in V2_OPERATIONS])
def test_v2_fuzzed_from_the_openapi_schema(model_dir: Path, method: str, path: str, examples: int) -> None:
    """No 5xx, and every answer documented (status, content type, body schema), for valid and invalid requests."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(model_dir=model_dir)))
    operation = schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )
    calls = 0

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def fuzz(case: Any) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
        )

    fuzz()
    assert calls >= examples // 2


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ([4, 7.25, 22], "Pclass"),
        ([0, 7.25, 22], "Pclass"),
        ([3, -1, 22], "Fare"),
        ([3, 20_000, 22], "Fare"),
        ([3, 7.25, 0], "Age"),
        ([3, 7.25, 121], "Age"),
        ([3, 7.25, -3.5], "Age"),
    ],
)
def test_v2_words_a_broken_rule_as_predict_does(client: TestClient, row: list[float], field: str) -> None:
    """The same rule, the same statement: only the value in parentheses is shown as each path read it."""
    predict = client.post("/predict", json=dict(zip(("pclass", "fare", "age"), row, strict=True)))
    assert predict.status_code == 422
    (problem,) = predict.json()["errors"]
    statement = problem["message"].rsplit(" (", 1)[0]
    v2 = client.post(INFER, content=features([row]))
    assert v2.status_code == 422
    assert v2.json()["error"].startswith(f"row 0: {field}: {statement} (got ")
