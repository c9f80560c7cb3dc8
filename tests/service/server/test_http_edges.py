"""Smaller protocol items of issue 24 against a real server: pipelining, garbage after a request, Host, errors."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from support.servers import HOST, Server, running

pytestmark = pytest.mark.system  # every test here talks to a real server

HEALTH: Final = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
SINGLE: Final = b'{"pclass": 3, "fare": 7.25, "age": 22}'
PREDICT: Final = (
    b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (
        len(SINGLE),
        SINGLE,
    )
)


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker with the shipped limits."""
    with running(tmp_path_factory.mktemp("edges"), model_dir, ACCESS_LOG="0") as server:
        yield server


def exchange(server: Server, data: bytes, then: bytes = b"") -> bytes:
    """Send `data` (and `then`, a moment later) on one connection; all the server sends until it closes or goes
    quiet for a second."""
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(data)
        if then:
            time.sleep(0.2)
            sock.sendall(then)
        sock.settimeout(1.0)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def statuses(answer: bytes) -> list[bytes]:
    """The status lines in a stream of answers (each may follow the previous body without a line break)."""
    return re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+(?=\r\n)", answer)


def test_pipelined_requests_over_the_head_limit_in_all_are_each_answered(server: Server) -> None:
    # 1,000 small requests and half of one more in one send: 37 KB, over the 32 KiB head limit in all, each far
    # under it; the last one's head ends in the next send.
    answer = exchange(server, HEALTH * 1000 + HEALTH[:20], then=HEALTH[20:])
    assert statuses(answer) == [b"HTTP/1.1 200 OK"] * 1001


def test_garbage_after_a_pipelined_request_gets_a_400_after_its_answer(server: Server) -> None:
    answer = exchange(server, PREDICT + b"GARBAGE\r\n\r\n")
    assert statuses(answer) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"]
    body = answer.rsplit(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["detail"].startswith("malformed HTTP request")


def test_a_framing_error_is_a_json_400(server: Server) -> None:
    answer = exchange(server, b"GET /health HTTP/1.1\r\nHost: test\r\nContent-Length: x\r\n\r\n")
    assert statuses(answer) == [b"HTTP/1.1 400 Bad Request"]
    assert b"content-type: application/json" in answer
    assert b"nosniff" in answer


def test_http_1_1_without_host_is_a_400_and_http_1_0_needs_none(server: Server) -> None:
    answer = exchange(server, b"GET /health HTTP/1.1\r\n\r\n")
    assert statuses(answer) == [b"HTTP/1.1 400 Bad Request"]
    assert b"must have a Host header" in answer
    assert statuses(exchange(server, b"GET /health HTTP/1.0\r\n\r\n")) == [b"HTTP/1.1 200 OK"]


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        (b"\xef\xbb\xbf\xef\xbb\xbfPclass,Fare,Age\n3,7.25,22\n", b"two byte order marks"),
        (b"Pclass;Fare;Age\n3;7.25;22\n", b"separated by ';'"),
    ],
    ids=["double BOM", "semicolons"],
)
def test_a_csv_that_only_looks_wrong_is_told_why(server: Server, csv: bytes, message: bytes) -> None:
    answer = server.request("POST", "/predict", csv, {"content-type": "text/csv"})
    assert answer.status == 422
    assert message in answer.body, answer.body


@pytest.mark.parametrize(
    ("content_type", "size", "status"),
    [("text/plain", 3_000_000, 415), ("application/json", 5_000_000, 413)],
    ids=["415", "413"],
)
def test_a_client_that_sends_its_whole_body_before_reading_gets_the_early_refusal(
    server: Server, content_type: str, size: int, status: int
) -> None:
    # http.client (like requests) sends the whole body before it reads: refused early, the connection must not
    # be reset under it (a close with unread bytes does that), so the server lingers before closing.
    for _ in range(3):
        conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
        try:
            conn.request("POST", "/predict", body=b" " * size, headers={"content-type": content_type})
            assert conn.getresponse().status == status
        finally:
            conn.close()


def test_static_files_are_cacheable_and_revalidated_with_a_304(server: Server) -> None:
    for path in ("/docs/static/swagger-ui.css", "/static/dashboard.css"):
        first = server.request("GET", path)
        assert first.status == 200
        assert first.headers["cache-control"] == "public, max-age=3600"
        again = server.request("GET", path, headers={"if-none-match": first.headers["etag"]})
        assert again.status == 304, path


def test_a_v2_shape_of_absurd_dimensions_is_a_413_not_a_500(server: Server) -> None:
    # Dimensions of 2,200 digits: their product has over 4,300, too many for Python to print in a message.
    dim = int("9" * 2_200)
    body = json.dumps({"inputs": [{"name": "features", "shape": [dim, dim], "datatype": "FP64", "data": []}]})
    answer = server.request("POST", "/v2/models/batchnorm/infer", body.encode(), {"content-type": "application/json"})
    assert answer.status == 413, answer.body
    assert b"a dimension of the shape is over the limit" in answer.body


def test_the_openapi_document_does_not_tell_that_admin_keys_exist(model_dir: Path, tmp_path: Path) -> None:
    key = "k" * 40
    with running(tmp_path, model_dir, ADMIN_API_KEYS=key, ACCESS_LOG="0") as admin:
        headers = {"authorization": f"Bearer {key}"}
        paths = json.loads(admin.request("GET", "/openapi.json", headers=headers).body)["paths"]
        assert not [path for path in paths if path.startswith("/admin")]
        assert admin.request("POST", "/admin/reload", headers=headers).status == 200
