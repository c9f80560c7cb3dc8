"""The one per-request note: what the layers of the app learn about a request and its access-log line reports.

The front creates it when a request arrives and keeps it under one key of the ASGI scope (`NOTE_KEY`); the data
plane, the control app's middleware and the guarded protocol (a body deadline) fill it in; the front writes the
metrics and the log line from it when the request is done.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from dataclasses import dataclass
from typing import Final

from starlette.types import Scope

NOTE_KEY: Final[str] = "service.note"
REQUEST_ID_HEADER: Final[bytes] = b"x-request-id"
# A client's id is kept only when it is short and plain; anything else gets a generated one.
SANE_REQUEST_ID: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_ROUTE: Final[str] = "unmatched"
# The method label takes these values and one more: a client may send any token as a method.
KNOWN_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD: Final[str] = "other"


@dataclass(slots=True)
class RequestNote:
    """One request as its metrics and its log line report it."""

    request_id: str
    method: str
    route: str = UNMATCHED_ROUTE
    status: int = 500
    rows: int | None = None
    models: tuple[str, ...] = ()
    run_id: str | None = None
    # The server answered 408 itself (the body's deadline passed) and dropped the app's answer.
    timed_out: bool = False
    # Whether the whole request body has been read (an early refusal closes the connection instead of parsing on).
    body_read: bool = True


class IdSource:
    """Request ids unique across processes and machines without a system call each: 64 random bits drawn once per
    process (and again in a forked child), then a counter; 32 hex digits, the shape of nginx's $request_id."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """A new random prefix and counter (a new process)."""
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def next(self) -> str:
        """A new id."""
        return f"{self._prefix}{next(self._counter):016x}"


IDS: Final[IdSource] = IdSource()


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is sane, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(text):
                return text
            break
    return IDS.next()


def method_label(method: str) -> str:
    """The request's method as a label value from a fixed set."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def new_note(scope: Scope) -> RequestNote:
    """The note of a request that has just arrived, kept in its scope."""
    note = RequestNote(request_id(scope), method_label(scope["method"]))
    scope[NOTE_KEY] = note
    return note


def note_of(scope: Scope) -> RequestNote | None:
    """The request's note (None for a scope that did not come through the front)."""
    note: RequestNote | None = scope.get(NOTE_KEY)
    return note
