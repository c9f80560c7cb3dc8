"""One structured line per request (JSON or text) on stdout, written by a background thread.

A line holds the time, method, route template, status, duration, rows predicted, models that answered,
the run id of the models and the request id; never a body, a header value other than a sane
X-Request-ID, a query string, a key or the client's address.

The event loop only formats a line and appends it to a buffer; a writer thread hands the buffer to stdout every
FLUSH_INTERVAL_S (or sooner once it holds FLUSH_BYTES), so a slow or blocked stdout (a full pipe, a stalled log
collector) never stalls a request. The buffer is bounded: past MAX_PENDING_BYTES lines are dropped and counted,
and the count is reported on stderr once per flush. Hand-written because the standard library's QueueHandler
still builds a LogRecord and formats on the caller's side per line; this keeps the loop's share to one string.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import sys
import threading
import time
from typing import Final

from service.note import RequestNote

FLUSH_INTERVAL_S: Final[float] = 0.05
FLUSH_BYTES: Final[int] = 256 * 1024
MAX_PENDING_BYTES: Final[int] = 8 * 1024 * 1024


def chunks(lines: list[str]) -> list[bytes]:
    """The lines as writes of at most PIPE_BUF bytes that end at a line's end: a pipe keeps such a write whole,
    so the lines of several workers sharing one stdout never interleave mid-line."""
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode("utf-8", "backslashreplace") + b"\n"
        if current and size + len(data) > select.PIPE_BUF:
            out.append(b"".join(current))
            current, size = [], 0
        current.append(data)
        size += len(data)
    if current:
        out.append(b"".join(current))
    return out


class LineWriter:
    """Lines appended by the event loop, written to a file descriptor by a daemon thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lines: list[str] = []
        self._bytes = 0
        self.dropped = 0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def append(self, line: str) -> None:
        """Queue one line (dropped and counted when the buffer is full)."""
        size = len(line) + 1
        if self._bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            return
        with self._lock:
            self._lines.append(line)
            self._bytes += size
        if self._thread is None:
            self._start()
        if self._bytes >= FLUSH_BYTES:
            self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write what is queued (from the writer thread; at exit, from the main thread)."""
        with self._lock:
            lines, self._lines, self._bytes = self._lines, [], 0
            dropped, self.dropped = self.dropped, 0
        for chunk in chunks(lines):
            view = memoryview(chunk)
            while view:
                try:
                    view = view[os.write(self.fd, view) :]
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    return  # stdout is gone (closed pipe): nothing more can be logged there
        if dropped:
            print(f"access log: {dropped} line(s) dropped, stdout did not keep up", file=sys.stderr, flush=True)


class Clock:
    """The log's timestamps, ISO 8601 in UTC to the millisecond; the date and time formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        """This moment, as 2026-12-06T17:42:13.123Z."""
        t = time.time()
        second = int(t)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((t - second) * 1000):03d}Z"


def json_string(value: str | None) -> str:
    """A JSON string (or null)."""
    return "null" if value is None else json.dumps(value)


class AccessLog:
    """Formats the request lines (JSON or text) and hands them to the writer.

    A JSON line is written with one format string: every field is a number, a route template, a method from a fixed
    set, a run id, or a request id of plain characters only (service/note.py's SANE_REQUEST_ID or a generated one), so
    JSON's writer runs once per distinct value, not once per line.
    """

    def __init__(self, log_format: str, writer: LineWriter | None = None) -> None:
        self.json = log_format == "json"
        self.writer = writer or LineWriter(sys.stdout.fileno())
        self.clock = Clock()
        self._models: dict[tuple[str, ...], str] = {}
        self._strings: dict[str | None, str] = {}

    def write(self, note: RequestNote, seconds: float) -> None:
        """Log one finished request."""
        now = self.clock.now()
        duration_ms = round(seconds * 1e3, 3)
        if self.json:
            models = self._models.get(note.models)
            if models is None:
                models = self._models[note.models] = json.dumps(list(note.models), separators=(",", ":"))
            line = (
                f'{{"time":"{now}","method":{self._string(note.method)},"route":{self._string(note.route)},'
                f'"status":{note.status},"duration_ms":{duration_ms!r},'
                f'"rows":{"null" if note.rows is None else note.rows},"models":{models},'
                f'"run_id":{self._string(note.run_id)},"request_id":"{note.request_id}"}}'
            )
        else:
            line = (
                f"time={now} method={note.method} route={note.route} status={note.status} "
                f"duration_ms={duration_ms} rows={note.rows} models={','.join(note.models)} run_id={note.run_id} "
                f"request_id={note.request_id}"
            )
        self.writer.append(line)

    def _string(self, value: str | None) -> str:
        """A JSON string of one of the few values a field takes (methods, routes, run ids), written once each."""
        text = self._strings.get(value)
        if text is None:
            if len(self._strings) > 1024:  # routes and run ids are few; never let the cache grow without bound
                self._strings.clear()
            text = self._strings[value] = json_string(value)
        return text

    def flush(self) -> None:
        """Write what is queued now (the app's shutdown)."""
        self.writer.flush()
