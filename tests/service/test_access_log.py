"""The access log of a real server: one structured line per request, request ids, nothing private."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pytest
from support.servers import Server, running

from survival.checkpoint import current_run_dir

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

JSON: Final = {"content-type": "application/json"}
SINGLE: Final = b'{"pclass": 3, "fare": 7.25, "age": 22}'
FIELDS: Final = {"time", "method", "route", "status", "duration_ms", "rows", "models", "run_id", "request_id"}


@pytest.fixture(scope="module")
def json_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the shipped logging (JSON lines on stdout)."""
    with running(tmp_path_factory.mktemp("json-log"), model_dir) as server:
        yield server


def line_of(server: Server, rid: str) -> dict[str, Any]:
    """The line the request with id `rid` logged (the line is written just after the answer: wait for it)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in server.stdout.read_text().splitlines():
            if f'"request_id":"{rid}"' in line:
                parsed: dict[str, Any] = json.loads(line)
                return parsed
        time.sleep(0.05)
    raise AssertionError(f"no line for request {rid}:\n{server.output()}")


def logged(server: Server, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[Any, Any]:
    """Send one request; (its answer, the JSON line it logged, found by the id the answer carries)."""
    answer = server.request(method, path, body, {**JSON, **headers} if body else headers)
    return answer, line_of(server, answer.headers["x-request-id"])


def test_a_prediction_logs_one_line_with_every_field(json_server: Server, model_dir: Path) -> None:
    answer, line = logged(json_server, "POST", "/predict", SINGLE, **{"X-Request-ID": "client-id_1.2:3"})
    assert answer.status == 200
    assert answer.headers["x-request-id"] == "client-id_1.2:3"
    assert set(line) == FIELDS
    assert line["method"] == "POST"
    assert line["route"] == "/predict"
    assert line["status"] == 200
    assert line["rows"] == 1
    assert line["models"] == ["batchnorm", "plain"]
    assert line["run_id"] == current_run_dir(model_dir).name
    assert line["request_id"] == "client-id_1.2:3"
    assert 0 < line["duration_ms"] < 10_000
    assert abs(datetime.fromisoformat(line["time"]).timestamp() - time.time()) < 60


def test_a_batch_logs_its_rows_and_the_model_that_answered(json_server: Server) -> None:
    body = json.dumps({"passengers": [{"pclass": 1, "fare": 30.0 + i} for i in range(30)]}).encode()
    answer, line = logged(json_server, "POST", "/predict?model=plain", body)
    assert answer.status == 200
    assert (line["rows"], line["models"]) == (30, ["plain"])


def test_a_v2_inference_logs_its_rows_and_model(json_server: Server, model_dir: Path) -> None:
    tensor = {"name": "features", "shape": [4, 3], "datatype": "FP64", "data": [3, 7.25, 22] * 4}
    answer, line = logged(json_server, "POST", "/v2/models/batchnorm/infer", json.dumps({"inputs": [tensor]}).encode())
    assert answer.status == 200
    assert (line["route"], line["rows"], line["models"]) == ("/v2/models/{name}/infer", 4, ["batchnorm"])
    assert line["run_id"] == current_run_dir(model_dir).name


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "semi;colon", 'quote"d', "ünïcode"])
def test_an_insane_request_id_is_replaced_by_a_generated_one(json_server: Server, sent: str) -> None:
    answer, line = logged(json_server, "GET", "/health", None, **{"X-Request-ID": sent.encode().decode("latin-1")})
    generated = answer.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert line["request_id"] == generated


def test_every_answer_gets_a_fresh_id_without_one(json_server: Server) -> None:
    ids = {json_server.request("GET", "/health").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_no_body_query_key_or_address_is_logged(json_server: Server) -> None:
    secret = "987654.3219"
    bad, bad_line = logged(json_server, "POST", "/predict", f'{{"pclass": 3, "fare": {secret}}}'.encode())
    assert bad.status == 422
    headers = {"Authorization": "Bearer sk-never-logged-123456", "X-API-Key": "sk-never-logged-123456"}
    lost, lost_line = logged(json_server, "GET", "/nowhere/private-path?token=query-secret", None, **headers)
    assert lost.status == 404
    assert (bad_line["route"], bad_line["status"]) == ("/predict", 422)
    assert (lost_line["route"], lost_line["status"]) == ("unmatched", 404)
    text = json_server.stdout.read_text()
    for private in (secret, "sk-never-logged", "private-path", "query-secret", "127.0.0.1"):
        assert private not in text


def test_text_format_and_off(model_dir: Path, tmp_path: Path) -> None:
    with running(tmp_path / "text", model_dir, LOG_FORMAT="text") as server:
        server.request("POST", "/predict", SINGLE, {**JSON, "X-Request-ID": "text-1"})
        time.sleep(0.5)
        (line,) = [line for line in server.stdout.read_text().splitlines() if "request_id=text-1" in line]
    assert re.fullmatch(
        r"time=\S+Z method=POST route=/predict status=200 duration_ms=[0-9.]+ rows=1 models=batchnorm,plain "
        r"run_id=\S+ request_id=text-1",
        line,
    ), line
    with running(tmp_path / "off", model_dir, ACCESS_LOG="0") as server:
        answer = server.request("POST", "/predict", SINGLE, JSON)
        time.sleep(0.5)
        assert server.stdout.read_text() == ""  # not even the readiness checks
    assert answer.status == 200
    assert "x-request-id" in answer.headers
