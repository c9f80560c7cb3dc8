"""uvicorn's httptools protocol with the limits it lacks, for hostile or broken clients.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) and nothing else: a request head
may arrive as slowly and grow as large as the client likes (httptools buffers it all), a body may stall
forever one byte short, and every connection holds a file descriptor until the process runs out and
every client fails. This subclass adds, per worker:

- a deadline for the request line and headers (HEADER_TIMEOUT_S) and for the body once the headers are
  in (BODY_TIMEOUT_S): 408 when an answer can still be sent, then the connection is closed;
- limits on the request target (414), on the head's size and on its number of fields (431);
- a bound on open connections (MAX_CONNECTIONS, kept below the file limit): past it the connection that
  has waited longest for its client (idle, or stalled in its head or body) is closed to make room, and a
  new one is refused with a 503 only when every connection is busy being answered;
- a bound on the bytes of unfinished bodies (MAX_PENDING_BODY_BYTES): past it the oldest stalled upload
  is closed.

Hand-written because no well-kept ASGI server bounds all of these (uvicorn has none of the deadlines;
hypercorn and granian lack a connection bound that sheds stalled clients); it changes only when a
connection's state changes, so a normal request pays two timer calls.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.note import note_of
from service.server.config import ServiceConfig
from service.server.one_write import offer_respond, write_head_with_body


class Phase(Enum):
    """What a connection is doing: waiting on its client (HEAD, BODY, IDLE) or being answered (BUSY)."""

    HEAD = "head"
    BODY = "body"
    BUSY = "busy"
    IDLE = "idle"


class RefusedError(Exception):
    """Raised in a parser callback to stop parsing a request that breaks a limit (uvicorn then calls
    `send_400_response`, which answers the limit's own status instead)."""


class Pool:
    """What a worker's connections share: those waiting on their client (oldest first) and unfinished body bytes."""

    def __init__(self) -> None:
        self.waiting: dict[GuardedHttpToolsProtocol, None] = {}
        self.body_bytes = 0

    def shed_oldest(self, keep: GuardedHttpToolsProtocol) -> bool:
        """Close the connection that has waited longest for its client (not `keep`); whether there was one."""
        for connection in self.waiting:
            if connection is not keep:
                connection.shed()
                return True
        return False

    def shed_uploads(self, limit: int) -> None:
        """Close the oldest stalled uploads until the unfinished bodies fit in `limit` bytes."""
        while self.body_bytes > limit:
            victim = next((c for c in self.waiting if c.phase is Phase.BODY and c.body_bytes), None)
            if victim is None:
                return
            victim.shed()


def pool_of(server_state: ServerState) -> Pool:
    """The pool of the server these connections belong to."""
    pool: Pool | None = getattr(server_state, "guard_pool", None)
    if pool is None:
        pool = Pool()
        server_state.guard_pool = pool  # type: ignore[attr-defined]
    return pool


def plain_response(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 answer with the service's JSON error body that closes the connection."""
    body = json.dumps({"detail": detail, "errors": []}).encode()
    head = [STATUS_LINE[status], b"content-type: application/json\r\n"]
    head += [b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n"]
    return b"".join(head) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus deadlines, head limits and bounds on connections and unfinished bodies."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, ServiceConfig):
            raise TypeError("GuardedHttpToolsProtocol reads its limits from a service.server.config.ServiceConfig")
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits
        self.pool = pool_of(server_state)
        self.phase = Phase.HEAD
        self.body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._began = False  # a byte of the current request has arrived
        self._head_bytes = 0  # arrived while the head is unfinished (httptools buffers a partial field)
        self._url_bytes = 0
        self._field_bytes = 0  # of the finished header fields
        self._header_count = 0
        self._refusal: tuple[int, str] | None = None

    # --- waiting on the client, or not ---------------------------------------------------------------------------
    def _wait(self, phase: Phase, seconds: float | None = None) -> None:
        """Enter a phase that waits on the client: newest in the pool, with its deadline."""
        self.phase = phase
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(seconds, self._deadline) if seconds is not None else None
        self.pool.waiting.pop(self, None)
        self.pool.waiting[self] = None

    def _leave_pool(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pool.waiting.pop(self, None)

    def _release_body(self) -> None:
        self.pool.body_bytes -= self.body_bytes
        self.body_bytes = 0

    def _deadline(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.phase is Phase.HEAD:
            # A connection that never began a request is closed without a word.
            self._close(408 if self._began else None, "the request headers did not arrive in time")
        elif self.phase is Phase.BODY:
            note = note_of(self.cycle.scope) if self.cycle is not None else None  # type: ignore[arg-type]
            if note is not None:
                note.timed_out = True
            self._close(408, "the request body did not arrive in time")
        elif self.phase is Phase.IDLE:
            self._close(None, "")

    def _can_answer(self) -> bool:
        """Whether an answer written now would be the answer to the request under way, and the only one."""
        cycle = self.cycle
        if self.phase is Phase.BODY:
            return cycle is not None and not cycle.response_started
        return cycle is None or cycle.response_complete

    def _close(self, status: int | None, detail: str) -> None:
        """Answer `status` if an answer can still be sent, stop the request's app, and close the connection."""
        cycle = self.cycle
        if status is not None and self._can_answer():
            self.transport.write(plain_response(status, detail))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self._leave_pool()
        self._release_body()
        self.transport.close()

    def shed(self) -> None:
        """Closed to make room: the client has kept this connection waiting longest."""
        self._close(None, "")

    # --- uvicorn's protocol ----------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept, within the connection bound; the head's deadline starts now."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self.pool.shed_oldest(keep=self):
            self._close(503, "the server has too many connections; retry later")
            return
        self._wait(Phase.HEAD, self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._leave_pool()
        self._release_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's parsing; then count what has arrived of an unfinished head."""
        super().data_received(data)
        if self.phase is Phase.HEAD and not self.transport.is_closing():
            # httptools keeps an unfinished header in its own buffer: count what has arrived for the head.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._close(431, self._head_too_large())

    def send_400_response(self, msg: str) -> None:
        """A request refused by a limit (a parser callback raised) gets that limit's status; anything else a 400."""
        if self._refusal is not None:
            self._close(*self._refusal)
            return
        super().send_400_response(msg)

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise RefusedError(detail)

    def on_message_begin(self) -> None:
        """A request begins: its head's deadline starts (on a kept-alive connection, now)."""
        super().on_message_begin()
        self._began = True
        self._head_bytes = self._url_bytes = self._field_bytes = self._header_count = 0
        if self.phase is not Phase.HEAD:
            self._wait(Phase.HEAD, self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        """Count the request target."""
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_url_bytes:
            self._refuse(414, f"the request target is over {self.limits.max_url_bytes} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header fields and their bytes."""
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, f"the request has over {self.limits.max_headers} header fields")
        self._field_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._url_bytes + self._field_bytes > self.limits.max_header_bytes:
            self._refuse(431, self._head_too_large())
        super().on_header(name, value)

    def _head_too_large(self) -> str:
        return f"the request head is over {self.limits.max_header_bytes} bytes"

    def on_headers_complete(self) -> None:
        """The head is in: the body's deadline starts."""
        self._wait(Phase.BODY, self.limits.body_timeout_s)
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not cycle:
            write_head_with_body(self.cycle)
            offer_respond(self.cycle)

    def on_body(self, body: bytes) -> None:
        """Count the body's bytes against the worker's bound on unfinished bodies."""
        super().on_body(body)
        self.body_bytes += len(body)
        self.pool.body_bytes += len(body)
        if self.pool.body_bytes > self.limits.max_pending_body_bytes:
            self.pool.shed_uploads(self.limits.max_pending_body_bytes)

    def on_message_complete(self) -> None:
        """The request is in: no longer waiting on the client (or idle, when it was answered before its body ended)."""
        super().on_message_complete()
        self._release_body()
        self._began = False
        if self.cycle is not None and self.cycle.response_complete:
            self._idle()
        else:
            self.phase = Phase.BUSY
            self._leave_pool()

    def on_response_complete(self) -> None:
        """Answered: idle until the next request."""
        super().on_response_complete()
        if self.phase is Phase.BUSY and not self.transport.is_closing():
            self._idle()

    def _idle(self) -> None:
        # uvicorn's keep-alive timer does the same, but it is cancelled by any byte (a late body's too).
        self._wait(Phase.IDLE, self.timeout_keep_alive)
