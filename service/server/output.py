"""The guarded protocol's side of answers: a send deadline, a budget for answers nobody reads, a lingering close.

A client that asks for a big answer and never reads it would hold the connection and the buffered bytes for as
long as it likes: once the unsent bytes pass the transport's high-water mark (`pause_writing`), the client has
SEND_TIMEOUT_S to take some, and the worker's unread answers count against MAX_OUTPUT_BYTES. A refused request
whose body is still arriving is answered, then its bytes are dropped for a moment before the close, because a
close with unread bytes resets the connection and can destroy the answer.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.server.config import Limits
from service.server.refusals import LINGER_BYTES, LINGER_S
from service.server.shed import Phase, Pool


class AnswerGuard(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines and a budget for the answers it sends (a base of the guard)."""

    limits: Limits
    pool: Pool
    phase: Phase
    body_bytes: int
    _timer: asyncio.TimerHandle | None
    _send_timer: asyncio.TimerHandle | None
    _unread: int
    _lingering: int

    def _leave_pool(self) -> None:
        """Leave the pool's lists and cancel the phase's deadline (the guard's)."""
        raise NotImplementedError

    def _release_body(self) -> None:
        self.pool.body_bytes -= self.body_bytes
        self.body_bytes = 0

    def close_after_answer(self) -> None:
        """Close after the app's answer; linger when the request's body may still be arriving (an early 413)."""
        if self.phase is Phase.BODY and self.transport.can_write_eof():
            self._leave_pool()
            self._release_body()
            self._linger()
        else:
            self.transport.close()

    def _linger(self) -> None:
        """Shut the write side after the answer; drop what arrives for a while, then close."""
        self._lingering = LINGER_BYTES
        self.transport.write_eof()
        self.flow.resume_reading()
        self._timer = self.loop.call_later(LINGER_S, self._end_linger)

    def _end_linger(self) -> None:
        self._timer = None
        self._lingering = 0
        self.transport.close()
        self._closing_deadline()

    def _closing_deadline(self) -> None:
        """A closing transport waits for its buffer to drain: a client that never reads would hold it for good."""
        if self._send_timer is None and self.transport.get_write_buffer_size():
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self.abort, "closing")

    def abort(self, why: str) -> None:
        """Disconnect at once, dropping whatever the client has not read (`why`: for the debug log)."""
        self.logger.debug("disconnecting a client: %s", why)
        self._count_unread(0)
        self._leave_pool()
        self._release_body()
        self.transport.abort()  # connection_lost follows: the app sees a disconnect, a drain waiting on it ends

    # --- answers the client does not read ------------------------------------------------------------------------
    def _count_unread(self, size: int) -> None:
        """Count `size` unread answer bytes in the pool's output budget (0: none), with the send deadline."""
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self.pool.out_bytes += size - self._unread
        self._unread = size
        if size:
            self.pool.unread[self] = None
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self.abort, "send deadline")
        else:
            self.pool.unread.pop(self, None)

    def pause_writing(self) -> None:
        """The answer's unsent bytes passed the transport's high-water mark: the send deadline starts."""
        super().pause_writing()
        self._count_unread(max(1, self.transport.get_write_buffer_size()))
        if self.pool.out_bytes > self.limits.max_output_bytes:
            self.pool.shed_unread(self.limits.max_output_bytes)

    def resume_writing(self) -> None:
        """The client is reading: no deadline while the buffer stays below the high-water mark."""
        super().resume_writing()
        self._count_unread(0)
        if self.transport.is_closing():
            self._closing_deadline()
