"""The data plane: the same answers through the production server's one-write path and the plain ASGI path, checks
made before any body byte is read, and the connection closed after an early refusal."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from fastapi.testclient import TestClient
from support.app import app_client
from support.servers import HOST, Server, running

JSON: Final = {"content-type": "application/json"}
BODIES: Final[list[tuple[str, bytes, dict[str, str]]]] = [
    ("/predict", b'{"pclass": 3, "fare": 7.25, "age": 22}', JSON),
    ("/predict?model=plain", b'{"passengers": [{"pclass": 1, "fare": 80}, {"Pclass": 2, "Age": 30}]}', JSON),
    ("/predict", b"PassengerId,Pclass,Fare,Age\n892,3,7.8292,34.5\n893,3,,\n", {"content-type": "text/csv"}),
    ("/predict", b'{"pclass": 4}', JSON),
    ("/predict", b'{"pclass": 3, "pclass": 1}', JSON),
    (
        "/v2/models/batchnorm/infer",
        json.dumps(
            {
                "id": "same-id-1",
                "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 1, 2]}],
            }
        ).encode(),
        JSON,
    ),
    ("/v2/models/nobody/infer", b"{}", JSON),
]


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The production server (`python -m service`: guarded protocol, one-write answers)."""
    with running(tmp_path_factory.mktemp("dataplane"), model_dir) as served:
        yield served


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """The same app without the server's one-write extension: answers go out as ASGI messages."""
    with app_client(model_dir) as test_client:
        yield test_client


@pytest.mark.parametrize(("path", "body", "headers"), BODIES)
@pytest.mark.system
def test_the_one_write_answer_equals_the_asgi_answer(
    server: Server, client: TestClient, path: str, body: bytes, headers: dict[str, str]
) -> None:
    sent = {**headers, "x-request-id": "same-id-1"}
    served = server.request("POST", path, body, sent)
    plain = client.post(path, content=body, headers=sent)
    assert served.status == plain.status_code
    assert served.body == plain.content
    for name in ("content-type", "content-length", "x-request-id", "x-content-type-options", "vary"):
        assert served.headers.get(name) == plain.headers.get(name), name
    assert served.headers["x-request-id"] == "same-id-1"
    assert served.headers["x-content-type-options"] == "nosniff"


def exchange(port: int, head: bytes, read_s: float = 5.0) -> tuple[bytes, bool]:
    """Send a request head only; what comes back and whether the server closed the connection."""
    with socket.create_connection((HOST, port), timeout=read_s) as sock:
        sock.sendall(head)
        received = b""
        closed = False
        try:
            while chunk := sock.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            pass
    return received, closed


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ("Content-Type: text/plain\r\n", 415),
        ("Content-Type: application/json\r\nContent-Encoding: gzip\r\n", 415),
        ("Content-Type: application/json\r\nContent-Type: text/csv\r\n", 400),
    ],
)
@pytest.mark.system
def test_a_refusal_by_the_head_comes_before_the_body_and_closes(server: Server, extra: str, status: int) -> None:
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n{extra}\r\n"
    ).encode()
    received, closed = exchange(server.port, head)
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:200]
    assert b"100 Continue" not in received  # the client was never invited to send the body
    assert closed, "the connection stayed open with a body still to come"


@pytest.mark.system
def test_an_over_limit_declared_body_is_refused_unread(server: Server) -> None:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n"
    received, closed = exchange(server.port, head)
    assert received.startswith(b"HTTP/1.1 413 "), received[:200]
    assert b"over the limit" in received
    assert closed


def test_other_methods_on_a_data_route_are_405_with_allow(client: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = client.request(method, "/predict")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        assert answer.json()["detail"] == "Method Not Allowed"
    v2 = client.get("/v2/models/plain/infer")
    assert v2.status_code == 405
    assert v2.json() == {"error": "Method Not Allowed"}


def test_a_lone_surrogate_in_a_field_name_is_a_422_naming_it(client: TestClient) -> None:
    answer = client.post("/predict", content=b'{"pclass": 3, "\\ud800": 1}', headers=JSON)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "\ud800"
    assert "unknown field" in answer.json()["detail"]


def test_generated_request_ids_are_distinct_32_hex_digits(client: TestClient) -> None:
    ids = {client.post("/predict", content=BODIES[0][1], headers=JSON).headers["x-request-id"] for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(
    "outputs", [None, [{"name": "survived"}], [{"name": "survived"}, {"name": "survival_probability"}]]
)
@pytest.mark.parametrize("request_id", [None, "client.id:7-x"])
@pytest.mark.parametrize("rows", [1, 64, 65])
def test_a_v2_json_answer_written_directly_equals_the_codecs(
    model_dir: Path, outputs: list[dict[str, str]] | None, request_id: str | None, rows: int
) -> None:
    from service.dataplane.core import RouteMatch
    from service.dataplane.head import RequestHead
    from service.dataplane.v2 import PROBABILITY, SURVIVED, V2Codec
    from service.pair import ServedPair
    from service.v2 import codec

    pair = ServedPair.load(model_dir)
    data = [[1 + i % 3, 5.0 + i, None if i % 4 else 30.5] for i in range(rows)]
    request: dict[str, object] = {
        "inputs": [{"name": "features", "shape": [rows, 3], "datatype": "FP64", "data": data}]
    }
    if request_id is not None:
        request["id"] = request_id
    if outputs is not None:
        request["outputs"] = outputs
    v2 = V2Codec(10_000)
    head = RequestHead("application/json", None, None, None, None, ())
    job = v2.prepare(head, pair, b"", RouteMatch("/v2/models/{name}/infer", "plain"))
    decoded = v2.decode(job, json.dumps(request).encode(), pair)
    probs = pair.predict(decoded.raw, decoded.names)["plain"]
    computed = {PROBABILITY: ("FP64", probs), SURVIVED: ("BOOL", probs >= 0.5)}
    tensors = [codec.OutputTensor(name, *computed[name]) for name in decoded.wanted]
    # The answer's id is the request's: the body's when it names one, else the one the front gave the request.
    answer_id = decoded.request_id or "a1b2c3"
    answer: dict[str, object] = {"model_name": "plain", "model_version": pair.models["plain"].version}
    answer["id"] = answer_id
    answer["parameters"] = {"run_id": pair.run_id}
    expected, _ = codec.encode(answer, tensors, set())
    assert v2.encode(job, decoded, pair, {"plain": probs}, answer_id).body == expected
