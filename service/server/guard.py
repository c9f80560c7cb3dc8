"""uvicorn's httptools protocol with the limits it lacks, for hostile or broken clients.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) and nothing else: a request head
may arrive as slowly and grow as large as the client likes (httptools buffers it all), a body may stall
forever one byte short or arrive in a million one-byte chunks, an answer may sit unread in memory for as
long as its client likes, and every connection holds a file descriptor until the process runs out and
every client fails. This subclass adds, per worker:

- a deadline for the request line and headers (HEADER_TIMEOUT_S) and for the body once the headers are
  in (BODY_TIMEOUT_S): 408 when an answer can still be sent, then the connection is closed;
- limits on the request target (414), on the head's size and on its number of fields (431), on a chunked
  body's number of chunks and on its framing (extensions, trailers: 400);
- a send deadline (SEND_TIMEOUT_S): a client that takes none of its answer for that long is disconnected,
  and the answers buffered for such clients count against a budget (MAX_OUTPUT_BYTES);
- a bound on open connections (MAX_CONNECTIONS, kept below the file limit) and on the bytes of unfinished
  bodies (MAX_PENDING_BODY_BYTES): past either, idle and slow connections are shed (service/server/shed.py),
  never one making progress; when none can be, the newcomer gets a 503.

Hand-written because no well-kept ASGI server bounds all of these (uvicorn has none of the deadlines;
hypercorn and granian lack a connection bound that sheds stalled clients); it changes only when a
connection's state changes, so a normal request pays two timer calls and a clock read per packet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from service.note import note_of
from service.server.config import ServiceConfig
from service.server.one_write import offer_respond, write_head_with_body
from service.server.output import AnswerGuard
from service.server.refusals import RefusedError, plain_response
from service.server.shed import RATE_WINDOW_S, STALLED_AFTER_S, Phase, pool_of


class GuardedHttpToolsProtocol(AnswerGuard):
    """uvicorn's httptools protocol plus deadlines, limits, and bounds on connections, bodies and unread answers."""

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
        self.body_bytes = 0  # of the unfinished body, counted in the pool
        self._timer: asyncio.TimerHandle | None = None  # a lingering close's end (service/server/output.py)
        # The deadline of the phase that waits on the client, and the one timer that watches it: armed for at most
        # the shortest timeout, it fires no later than any deadline a later phase sets, so a phase change only
        # writes `_due`, and a request on a kept-alive connection creates and cancels no timer.
        self._due: float | None = None
        self._phase_timer: asyncio.TimerHandle | None = None
        self._tick = min(self.limits.header_timeout_s, self.limits.body_timeout_s, float(self.timeout_keep_alive))
        self._send_timer: asyncio.TimerHandle | None = None
        self._unread = 0  # answer bytes counted in the pool's output budget while the transport is paused
        self._phase_start = self._last_byte = self.loop.time()
        self._arrived = 0  # bytes since the phase began: the client's rate
        self._began = False  # a byte of the current request has arrived
        self._head_bytes = 0  # arrived while the head is unfinished (httptools buffers a partial field)
        self._url_bytes = 0
        self._field_bytes = 0  # of the finished header fields
        self._header_count = 0
        self._chunks = 0
        self._request_body = 0  # body bytes of the current request (not released when it completes)
        self._framing = 0  # bytes of the current body that were chunk framing, not body
        self._requests = self._done = 0  # begun and complete on this connection
        self._refusal: tuple[int, str] | None = None
        self._after_answer: tuple[int, str] | None = None  # a refusal that waits for the answer under way
        self._host = False  # the request named its Host
        self._lingering = 0  # bytes still to drop after a refusal, before the connection is closed

    # --- waiting on the client, or not ---------------------------------------------------------------------------
    def _wait(self, phase: Phase, seconds: float | None = None) -> None:
        """Enter a phase that waits on the client: newest in the pool, with its deadline."""
        self.phase = phase
        now = self.loop.time()
        self._due = None if seconds is None else now + seconds
        if seconds is not None and self._phase_timer is None:
            self._phase_timer = self.loop.call_later(min(seconds, self._tick), self._check_deadline)
        self._phase_start = now
        self._arrived = 0
        self.pool.forget(self)
        (self.pool.idle if phase is Phase.IDLE else self.pool.waiting)[self] = None

    def rate(self, now: float) -> float:
        """Bytes per second the client has sent in this phase; 0 when it has been quiet for a while."""
        if now - self._last_byte >= STALLED_AFTER_S:
            return 0.0
        return self._arrived / max(now - self._phase_start, RATE_WINDOW_S)

    def _leave_pool(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = None
        self.pool.forget(self)

    def _check_deadline(self) -> None:
        """The phase timer fired: act on a deadline that has passed, else watch the one still ahead."""
        self._phase_timer = None
        due = self._due
        if due is None or self.transport.is_closing():
            return
        remaining = due - self.loop.time()
        if remaining > 0:
            self._phase_timer = self.loop.call_later(min(remaining, self._tick), self._check_deadline)
            return
        self._due = None
        self._deadline()

    def _deadline(self) -> None:
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

    def _close(self, status: int | None, detail: str, *, linger: bool = False) -> None:
        """Answer `status` if an answer can still be sent, stop the request's app, and close the connection.

        `linger`: the client may still be sending its body. Closing a socket with unread bytes makes the kernel
        send a reset, which can destroy the answer before the client reads it; so the write side is shut first
        and what still arrives is read and dropped for a moment (nginx's lingering close), then it is closed.
        """
        cycle = self.cycle
        answered = status is not None and self._can_answer()
        if status is not None and answered:
            self.transport.write(plain_response(status, detail))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self._leave_pool()
        self._release_body()
        if answered and linger and self.transport.can_write_eof():
            self._linger()
            return
        self.transport.close()
        self._closing_deadline()

    def shed(self) -> None:
        """Closed to make room: idle, or its client is the slowest (an upload is told 503 first)."""
        if self.transport.get_write_buffer_size():
            self.abort("shed with an unread answer")
        elif self.phase is Phase.BODY:
            self._close(503, "the server is holding too many uploads and yours was the slowest; retry later")
        else:
            self._close(None, "")

    # --- uvicorn's protocol ----------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept, within the connection bound; the head's deadline starts now."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self.pool.shed_for_connection(
            self.loop.time(), self.limits.min_client_rate, keep=self
        ):
            self._close(503, "the server has too many connections; retry later")
            return
        self._wait(Phase.HEAD, self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._count_unread(0)
        self._leave_pool()
        if self._phase_timer is not None:
            self._phase_timer.cancel()
            self._phase_timer = None
        self._release_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's parsing; the client's rate, what arrived of an unfinished head, and a body's chunk framing."""
        if self._lingering:
            self._lingering -= len(data)  # dropped unparsed: the answer is sent
            if self._lingering <= 0:
                self._end_linger()
            return
        self._last_byte = self.loop.time()
        self._arrived += len(data)
        in_body, body_before, request, done = self.phase is Phase.BODY, self._request_body, self._requests, self._done
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self.phase is Phase.HEAD and done == self._done:
            # httptools keeps an unfinished header in its own buffer: count what has arrived for the head (not a
            # packet of pipelined requests that ends in the next one's head: that one is counted from its next packet).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._close(431, self._head_too_large())
        elif in_body and self.phase is Phase.BODY and request == self._requests:
            # What was not body is framing: chunk sizes, extensions, trailers (httptools buffers a partial one).
            self._framing += len(data) - (self._request_body - body_before)
            if self._framing > self.limits.max_chunk_framing_bytes + 24 * self._chunks:
                limit = self.limits.max_chunk_framing_bytes
                self._close(400, f"the chunk extensions or trailers are over {limit} bytes", linger=True)

    def send_400_response(self, msg: str) -> None:
        """A request refused by a limit gets that limit's status; a malformed one a JSON 400 (never text/plain).

        Garbage after a complete pipelined request waits for that request's answer, then gets its 400.
        """
        refusal = self._refusal or (400, "malformed HTTP request (its request line, a header or its framing)")
        cycle = self.cycle
        if self.phase is not Phase.BODY and cycle is not None and not cycle.response_complete:
            self._after_answer = refusal
            self.flow.pause_reading()
            return
        self._close(*refusal, linger=self.phase is Phase.BODY)

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise RefusedError(detail)

    def on_message_begin(self) -> None:
        """A request begins: its head's deadline starts (on a kept-alive connection, now)."""
        super().on_message_begin()
        self._began = True
        self._head_bytes = self._url_bytes = self._field_bytes = self._header_count = 0
        self._chunks = self._request_body = self._framing = 0
        self._requests += 1
        self._host = False
        if self.phase is not Phase.HEAD:
            self._wait(Phase.HEAD, self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        """Count the request target."""
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_url_bytes:
            self._refuse(414, f"the request target is over {self.limits.max_url_bytes} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header fields and their bytes (a chunked body's trailer fields too)."""
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, f"the request has over {self.limits.max_headers} header fields")
        self._field_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(name) == 4 and name.lower() == b"host":
            self._host = True
        if self._url_bytes + self._field_bytes > self.limits.max_header_bytes:
            self._refuse(431, self._head_too_large())
        super().on_header(name, value)

    def _head_too_large(self) -> str:
        return f"the request head is over {self.limits.max_header_bytes} bytes"

    def on_headers_complete(self) -> None:
        """The head is in (an HTTP/1.1 one with its Host, RFC 9112 section 3.2): the body's deadline starts."""
        if not self._host and self.parser.get_http_version() == "1.1":
            self._refuse(400, "an HTTP/1.1 request must have a Host header")
        self._wait(Phase.BODY, self.limits.body_timeout_s)
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not cycle:
            write_head_with_body(self.cycle)
            offer_respond(self.cycle, self.close_after_answer)

    def on_chunk_header(self) -> None:
        """Count a chunked body's chunks: each costs a parser callback, so a body of one-byte chunks is refused."""
        self._chunks += 1
        if self._chunks > self.limits.max_body_chunks:
            self._refuse(400, f"the request body is sent in over {self.limits.max_body_chunks} chunks")

    def on_body(self, body: bytes) -> None:
        """Count the body's bytes against the worker's bound on unfinished bodies (slow uploads shed past it)."""
        super().on_body(body)
        size = len(body)
        self.body_bytes += size
        self._request_body += size
        pool = self.pool
        pool.body_bytes += size
        limit = self.limits.max_pending_body_bytes
        if pool.body_bytes > limit and not pool.shed_uploads(
            self.loop.time(), self.limits.min_client_rate, limit, self
        ):
            self._refuse(503, "the server is holding too many uploads; retry later")

    def on_message_complete(self) -> None:
        """The request is in: no longer waiting on the client (or idle, when it was answered before its body ended)."""
        super().on_message_complete()
        self._done += 1
        self._release_body()
        self._began = False
        if self.cycle is not None and self.cycle.response_complete:
            self._idle()
        else:
            self.phase = Phase.BUSY
            self._leave_pool()

    def on_response_complete(self) -> None:
        """Answered: idle until the next request (a closing connection gets a deadline to drain its answer)."""
        super().on_response_complete()
        if self._after_answer is not None and not self.pipeline and not self.transport.is_closing():
            self._close(*self._after_answer)
        if self.transport.is_closing():
            self._closing_deadline()
        elif self.phase is Phase.BUSY:
            self._idle()

    def _idle(self) -> None:
        # uvicorn's keep-alive timer does the same, but it is cancelled by any byte (a late body's too).
        self._wait(Phase.IDLE, self.timeout_keep_alive)
