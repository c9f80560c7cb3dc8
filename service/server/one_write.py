"""A response's head and the start of its body leave the worker in one write, so a crash cannot split them.

uvicorn writes a response's head (status line and headers) and its body in two calls. A worker killed between
the two (SIGKILL, the OOM killer) leaves the client, or a load balancer, with a head and a truncated body:
nginx has already passed the head on and can no longer retry the request on another replica. Written together,
either the whole small response reaches the socket or none of it does, and a proxy retries what got nothing.
tests/deploy/test_nginx.py kills a replica under load and counts no failed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

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


# The scope extension through which an app answers a request in one call and one write (service/dataplane/front.py).
RESPOND: Final[str] = "service.respond"


def offer_respond(cycle: Any, closer: Callable[[], None] | None = None) -> None:
    """Offer the app of uvicorn's request-response `cycle` the RESPOND extension, bound to the cycle (`closer`:
    how the server closes the connection after an answer, when not by closing the transport at once)."""
    extensions = cycle.scope.get("extensions")
    if extensions is None:
        extensions = cycle.scope["extensions"] = {}
    extensions[RESPOND] = partial(respond, cycle, closer)


async def respond(
    cycle: Any, closer: Callable[[], None] | None, status: int, head: bytes, body: bytes, close: bool
) -> None:
    """The whole answer in one transport write: status line, the server's headers, `head` (CRLF-terminated lines),
    Content-Length and the body; `close` ends the connection after it (its request body was not read to the end).

    What uvicorn's `send` does for a start and a body message, without building and checking an ASGI message per
    part: the data plane's own answers only, whose header lines it writes itself.
    """
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return
    if cycle.response_started:
        raise RuntimeError("an answer has already been started for this request")
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if close:
        cycle.keep_alive = False
    parts = [STATUS_LINE[status]]
    parts += [b"%s: %s\r\n" % pair for pair in cycle.default_headers]
    parts += [head, b"content-length: %d\r\n" % len(body)]
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += [b"\r\n", body]
    cycle.transport.write(b"".join(parts))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        if closer is not None:
            closer()  # the guard: it lingers when the body is still arriving, so the answer is not reset away
        else:
            cycle.transport.close()
    cycle.on_response()
