"""Slow, stalled and oversized clients against a real server: deadlines, head limits, bounded connections and bodies."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from support.servers import HOST, Server, running

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

SINGLE: Final = b'{"pclass": 3, "fare": 7.25, "age": 22}'
JSON: Final = {"content-type": "application/json"}
DEADLINE_S: Final = 1.0
# What a deadline of one second may take on a busy machine before the server acts on it.
SLACK_S: Final = 4.0
MAX_CONNECTIONS: Final = 60
BODY_BUDGET: Final = 1024 * 1024


@pytest.fixture(scope="module")
def deadlines(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with one-second deadlines and small head limits."""
    settings = {
        "HEADER_TIMEOUT_S": str(DEADLINE_S),
        "BODY_TIMEOUT_S": str(DEADLINE_S),
        "KEEP_ALIVE_TIMEOUT_S": "1",
        "MAX_URL_BYTES": "1024",
        "MAX_HEADER_BYTES": "4096",
        "MAX_HEADERS": "20",
    }
    with running(tmp_path_factory.mktemp("deadlines"), model_dir, **settings) as server:
        yield server


@pytest.fixture(scope="module")
def bounds(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with long deadlines and small bounds on connections and unfinished bodies."""
    settings = {
        "HEADER_TIMEOUT_S": "120",
        "BODY_TIMEOUT_S": "120",
        "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "MAX_PENDING_BODY_BYTES": str(BODY_BUDGET),
    }
    with running(tmp_path_factory.mktemp("bounds"), model_dir, **settings) as server:
        yield server


def connect(server: Server) -> socket.socket:
    """A raw connection to the server."""
    return socket.create_connection((HOST, server.port), timeout=SLACK_S + DEADLINE_S)


def read_until_closed(sock: socket.socket, timeout: float = SLACK_S + DEADLINE_S) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not within `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def is_closed(sock: socket.socket, wait: float = 0.05) -> bool:
    """Whether the server has closed this connection (nothing it sent is expected)."""
    sock.settimeout(wait)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    return int(answer.split(b" ", 2)[1])


def test_a_head_that_stops_halfway_gets_408_after_the_deadline(deadlines: Server) -> None:
    with connect(deadlines) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: appl")
        answer = read_until_closed(sock)
        took = time.monotonic() - start
    assert status_of(answer) == 408, answer
    assert b"headers did not arrive in time" in answer
    assert DEADLINE_S * 0.9 <= took <= DEADLINE_S + SLACK_S


def test_a_connection_that_never_sends_is_closed_without_an_answer(deadlines: Server) -> None:
    with connect(deadlines) as sock:
        start = time.monotonic()
        assert read_until_closed(sock) == b""
        assert DEADLINE_S * 0.9 <= time.monotonic() - start <= DEADLINE_S + SLACK_S


def test_a_body_that_stalls_gets_408_after_the_deadline(deadlines: Server) -> None:
    with connect(deadlines) as sock:
        head = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        start = time.monotonic()
        sock.sendall(head + b'{"pclass": 3,')
        answer = read_until_closed(sock)
        took = time.monotonic() - start
    assert status_of(answer) == 408, answer
    assert b"body did not arrive in time" in answer
    assert DEADLINE_S * 0.9 <= took <= DEADLINE_S + SLACK_S
    time.sleep(0.5)
    last = json.loads(deadlines.stdout.read_text().splitlines()[-1])
    assert (last["route"], last["status"]) == ("/predict", 408)


def test_an_idle_keep_alive_connection_is_closed(deadlines: Server) -> None:
    with connect(deadlines) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        start = time.monotonic()
        answer = read_until_closed(sock)
        took = time.monotonic() - start
    assert status_of(answer) == 200
    assert 0.5 <= took <= 1 + SLACK_S


def test_a_request_target_over_the_limit_gets_414(deadlines: Server) -> None:
    answer = deadlines.request("GET", "/models?" + "a" * 2000)
    assert answer.status == 414
    assert b"request target is over 1024 bytes" in answer.body


def test_too_many_header_fields_get_431(deadlines: Server) -> None:
    headers = {f"x-field-{i}": "1" for i in range(25)}
    answer = deadlines.request("GET", "/health", headers=headers)
    assert answer.status == 431
    assert b"over 20 header fields" in answer.body


def test_a_head_over_the_size_limit_gets_431_even_before_it_ends(deadlines: Server) -> None:
    assert deadlines.request("GET", "/health", headers={"x-big": "b" * 5000}).status == 431
    with connect(deadlines) as sock:
        # One header that never ends: refused as soon as the head passes the limit, not at the deadline.
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Endless: " + b"e" * 6000)
        start = time.monotonic()
        answer = read_until_closed(sock)
        assert time.monotonic() - start < DEADLINE_S * 0.9
    assert status_of(answer) == 431
    assert deadlines.request("GET", "/health", headers={"x-fine": "f" * 1000}).status == 200


def test_stalled_connections_past_the_bound_shed_the_oldest_and_clients_are_served(bounds: Server) -> None:
    stalled = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):
            sock = connect(bounds)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
            stalled.append(sock)
        for _ in range(10):
            assert bounds.request("POST", "/predict", SINGLE, JSON).status == 200
        time.sleep(0.5)
        closed = [is_closed(sock) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    # The oldest were closed to make room, the newest still wait (their deadline is two minutes away).
    assert sum(closed) >= 2 * MAX_CONNECTIONS, sum(closed)
    assert all(closed[:MAX_CONNECTIONS]), closed[:MAX_CONNECTIONS]
    assert not any(closed[-MAX_CONNECTIONS // 2 :])


def test_stalled_uploads_past_the_body_budget_shed_the_oldest(bounds: Server) -> None:
    part = 300 * 1024
    uploads = []
    try:
        for _ in range(6):
            sock = connect(bounds)
            head = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            sock.sendall(head + b"Content-Length: %d\r\n\r\n" % (2 * part) + b" " * part)
            uploads.append(sock)
            # One after the other, so "oldest" is well defined; the first three then stall (quiet for a second).
            time.sleep(1.5 if len(uploads) == 3 else 0.2)
        assert bounds.request("POST", "/predict", SINGLE, JSON).status == 200
        time.sleep(0.5)
        answers = [read_until_closed(sock) if i < 3 else b"" for i, sock in enumerate(uploads)]
        closed = [bool(answer) or is_closed(sock) for answer, sock in zip(answers, uploads, strict=True)]
    finally:
        for sock in uploads:
            sock.close()
    # 6 x 300 KiB against a 1 MiB budget: the three stalled ones are closed with a 503, the three newest fit.
    assert closed == [True, True, True, False, False, False]
    assert all(status_of(answer) == 503 and b"retry-after: 1" in answer for answer in answers[:3]), answers
