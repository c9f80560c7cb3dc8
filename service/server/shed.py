"""What a worker's connections share, and whom it sheds when a bound is reached (docs/hostile-clients.md).

The policy, in order: an idle keep-alive connection (the one idle longest); then a connection that is sending its
request slower than MIN_CLIENT_RATE (the slowest; one quiet for STALLED_AFTER_S counts as stalled, at zero); never a
connection whose client is making progress at that rate or more, nor one being answered (those have their own send
deadline and output budget). When nobody can be shed, the newcomer is refused with a 503.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Final

from uvicorn.server import ServerState

if TYPE_CHECKING:
    from service.server.guard import GuardedHttpToolsProtocol
    from service.server.output import AnswerGuard

# A connection that has sent nothing for this long is stalled, whatever it sent before.
STALLED_AFTER_S: Final[float] = 1.0
# A rate is measured over at least this long, so a connection a few milliseconds old is not judged on one packet.
RATE_WINDOW_S: Final[float] = 1.0
# Candidates looked at, oldest first, to find the slowest: the search stays cheap under a flood of new connections.
SCAN: Final[int] = 32


class Phase(Enum):
    """What a connection is doing: waiting on its client (HEAD, BODY, IDLE) or being answered (BUSY)."""

    HEAD = "head"
    BODY = "body"
    BUSY = "busy"
    IDLE = "idle"


class Pool:
    """A worker's connections that wait on their client (oldest first), idle ones apart, and the bytes they hold."""

    def __init__(self) -> None:
        self.waiting: dict[GuardedHttpToolsProtocol, None] = {}
        self.idle: dict[GuardedHttpToolsProtocol, None] = {}
        self.body_bytes = 0
        # Bytes of answers buffered for clients that do not take them (counted while a transport is paused).
        self.out_bytes = 0
        self.unread: dict[AnswerGuard, None] = {}

    def forget(self, connection: GuardedHttpToolsProtocol) -> None:
        """Take `connection` out of the waiting and idle lists."""
        self.waiting.pop(connection, None)
        self.idle.pop(connection, None)

    def victim(
        self, now: float, min_rate: float, keep: GuardedHttpToolsProtocol, *, uploads: bool = False
    ) -> GuardedHttpToolsProtocol | None:
        """The connection to shed under the policy (`uploads`: only unfinished bodies, for the body budget)."""
        if not uploads:
            for connection in self.idle:
                if connection is not keep:
                    return connection
        best: GuardedHttpToolsProtocol | None = None
        best_rate = min_rate
        seen = 0
        for connection in self.waiting:
            if connection is keep or (uploads and not connection.body_bytes):
                continue
            rate = connection.rate(now)
            if rate < best_rate:
                best, best_rate = connection, rate
            seen += 1
            if best is not None and (seen >= SCAN or best_rate == 0.0):
                break
        return best

    def shed_for_connection(self, now: float, min_rate: float, keep: GuardedHttpToolsProtocol) -> bool:
        """Close one connection to make room for `keep`; whether there was one to close."""
        victim = self.victim(now, min_rate, keep)
        if victim is None:
            return False
        victim.shed()
        return True

    def shed_uploads(self, now: float, min_rate: float, limit: int, keep: GuardedHttpToolsProtocol) -> bool:
        """Close slow uploads until the unfinished bodies fit in `limit` bytes; whether they fit."""
        while self.body_bytes > limit:
            victim = self.victim(now, min_rate, keep, uploads=True)
            if victim is None:
                return False
            victim.shed()
        return True

    def shed_unread(self, limit: int) -> None:
        """Disconnect the clients that have not read their answers for longest until the buffered answers fit."""
        while self.out_bytes > limit and self.unread:
            next(iter(self.unread)).abort("the worker's budget for unread answers is spent")


def pool_of(server_state: ServerState) -> Pool:
    """The pool of the server these connections belong to."""
    pool: Pool | None = getattr(server_state, "guard_pool", None)
    if pool is None:
        pool = Pool()
        server_state.guard_pool = pool  # type: ignore[attr-defined]
    return pool
