"""A response's head and the start of its body leave the worker in one write, so a crash cannot split them.

uvicorn writes a response's head (status line and headers) and its body in two calls. A worker killed between
the two (SIGKILL, the OOM killer) leaves the client, or a load balancer, with a head and a truncated body:
nginx has already passed the head on and can no longer retry the request on another replica. Written together,
either the whole small response reaches the socket or none of it does, and a proxy retries what got nothing.
tests/test_nginx.py kills a replica under load and counts no failed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[Any], Awaitable[None]]


class _Collected:
    """Stands in for the transport while the head and the first body chunk are written; delegates the rest."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.close_requested = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.close_requested = True  # after the collected bytes, not before them

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def write_head_with_body(cycle: Any) -> None:
    """Make uvicorn's request-response `cycle` hold its response head back until the first body chunk."""
    send: Send = cycle.send
    held: list[Any] = []

    async def one_write_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            held[:] = [message]  # a later start (uvicorn's own 500 after an app error) replaces it
            return
        if not held or message["type"] != "http.response.body":
            await send(message)
            return
        real, collected = cycle.transport, _Collected(cycle.transport)
        cycle.transport = collected
        try:
            await send(held.pop())
            await send(message)
        finally:
            cycle.transport = real
            if collected.parts:
                real.write(b"".join(collected.parts))
            if collected.close_requested:
                real.close()

    # The ASGI task looks `cycle.send` up when it starts, after this runs (uvicorn schedules it).
    cycle.send = one_write_send
