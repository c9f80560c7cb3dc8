"""SIGTERM on a real server: /ready and /v2/health/ready turn 503 at once, sent requests are answered, exit 0."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Final

import pytest
from support.servers import HOST, launch, stop, wait_ready

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

ROWS: Final = 3000
IN_FLIGHT: Final = 12
GRACEFUL_S: Final = 10


def batch() -> bytes:
    """A raw POST /predict request of ROWS passengers."""
    body = json.dumps({"passengers": [{"pclass": 1 + i % 3, "fare": 5.0 + i % 200, "age": 30} for i in range(ROWS)]})
    head = f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n" + body).encode()


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(1 << 20):
        data += chunk
    return data


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_what_was_sent_and_exits_0(model_dir: Path, tmp_path: Path, workers: str) -> None:
    env = {"MODEL_DIR": str(model_dir), "WEB_CONCURRENCY": workers, "GRACEFUL_TIMEOUT_S": str(GRACEFUL_S)}
    server = launch(tmp_path, env)
    socks: list[socket.socket] = []
    try:
        wait_ready(server)
        request = batch()
        socks += [socket.create_connection((HOST, server.port), timeout=60) for _ in range(IN_FLIGHT)]
        # Each request is written whole before the signal (Connection: close makes the answer end the read).
        sent = [
            threading.Thread(
                target=s.sendall, args=(request.replace(b"Host: test", b"Host: test\r\nConnection: close"),)
            )
            for s in socks
        ]
        for thread in sent:
            thread.start()
        for thread in sent:
            thread.join()
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        ready = server.request("GET", "/ready")
        v2_ready = server.request("GET", "/v2/health/ready")  # what a KServe or Triton client asks
        answers = [answer_of(s) for s in socks]
        server.process.wait(timeout=GRACEFUL_S + 20)
        took = time.monotonic() - start
    finally:
        for sock in socks:
            sock.close()
        stop(server)
    assert (ready.status, json.loads(ready.body)["status"]) == (503, "draining")
    assert (v2_ready.status, json.loads(v2_ready.body)["ready"]) == (503, False)
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert len(json.loads(body)["predictions"]) == ROWS
    print(f"\nSIGTERM with {IN_FLIGHT} x {ROWS}-row requests in flight, {workers} worker(s): exit 0 after {took:.2f} s")
    assert server.process.returncode == 0, server.output()
    assert took < GRACEFUL_S + 5, took
    assert "Traceback" not in server.output()
