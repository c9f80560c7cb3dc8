"""A response leaves the worker in one write: what the served protocol hands its transport, request by request.

The served app (its lifespan run, real checkpoints) behind the protocol `python -m service` runs
(service.guard.GuardedHttpToolsProtocol), fed raw requests; the transport records every write. A worker killed
between two writes of one response would leave a load balancer with a head it cannot retry
(tests/deploy/test_nginx.py kills one under load).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.server import ServerState

from service.config import Settings
from service.main import create_app
from service.server.config import ServiceConfig
from service.server.guard import GuardedHttpToolsProtocol


class RecordingTransport(asyncio.Transport):
    """A connected socket's transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.closed_when_answered = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture
async def served(model_dir: Path) -> AsyncIterator[uvicorn.Config]:
    """The app as a worker serves it: uvicorn's config loaded, the lifespan started."""
    settings = Settings(model_dir=model_dir)
    config = ServiceConfig(settings, create_app(settings), http=GuardedHttpToolsProtocol)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    yield config
    await lifespan.shutdown()


async def exchange(config: uvicorn.Config, request: bytes, settle: float = 0.5) -> RecordingTransport:
    """Feed one raw request to a new connection; the transport once the answer is written (or `settle` s)."""
    protocol = GuardedHttpToolsProtocol(config, ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    deadline = asyncio.get_running_loop().time() + settle
    while asyncio.get_running_loop().time() < deadline and not (protocol.cycle and protocol.cycle.response_complete):
        await asyncio.sleep(0.005)
    transport.closed_when_answered = transport.closed
    protocol.connection_lost(None)
    return transport


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (post("/predict", b'{"pclass": 3, "fare": 7.25, "age": 22}'), 200),
        (post("/predict", json.dumps({"passengers": [{"pclass": 1, "fare": 80.0}] * 300}).encode()), 200),
        (post("/predict", b'{"pclass": 9}'), 422),
        (post("/predict", b'{"pclass": 3}', "Connection: close"), 200),
        (b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n", 200),
        (b"GET /nowhere HTTP/1.1\r\nHost: test\r\n\r\n", 404),
        (b"HEAD /health HTTP/1.1\r\nHost: test\r\n\r\n", 200),
    ],
    ids=["one", "batch", "invalid", "connection-close", "get", "not-found", "head"],
)
async def test_each_answer_is_one_write_of_head_and_body(
    served: uvicorn.Config, request_bytes: bytes, status: int
) -> None:
    transport = await exchange(served, request_bytes)
    assert len(transport.writes) == 1, [w[:80] for w in transport.writes]
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1]
    )
    assert len(body) == (0 if request_bytes.startswith(b"HEAD") else length)
    assert transport.closed_when_answered is (b"Connection: close" in request_bytes)


@pytest.mark.anyio
async def test_100_continue_is_not_held_back(served: uvicorn.Config) -> None:
    """A client waiting for `100 Continue` before its body gets it at once, then the answer in one write."""
    body = b'{"pclass": 2, "fare": 13.0}'
    protocol = GuardedHttpToolsProtocol(served, ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(post("/predict", body, "Expect: 100-continue")[: -len(body)])  # the head alone
    for _ in range(100):
        if transport.writes:
            break
        await asyncio.sleep(0.005)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(body)
    for _ in range(200):
        if len(transport.writes) > 1:
            break
        await asyncio.sleep(0.005)
    protocol.connection_lost(None)
    assert len(transport.writes) == 2
    assert transport.writes[1].startswith(b"HTTP/1.1 200 ")
    assert transport.writes[1].endswith(b"}")


@pytest.fixture
def anyio_backend() -> str:
    """uvicorn's protocols run on asyncio."""
    return "asyncio"
