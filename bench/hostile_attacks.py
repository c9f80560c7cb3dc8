"""The attacks of issue 24, each a function of its size: what the attacker saw, and how soon the server let go.

Loopback only, bounded in connections and seconds. bench/bench_hostile.py runs them at full size and prints
figures; tests/service/server/test_hostile_load.py runs them reduced and asserts on them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from hostile_kit import (
    PREDICT_HEAD,
    SINGLE,
    batch,
    connect,
    in_threads,
    key_flood,
    most_held,
    open_sockets,
    post,
    server_closed,
    status_line,
    wait_released,
)

STATIC_BUNDLE: Final[bytes] = b"GET /docs/static/swagger-ui-bundle.js HTTP/1.1\r\nHost: bench\r\n\r\n"
CHUNKED_HEAD: Final[bytes] = PREDICT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
PIECE: Final[bytes] = b"a" * 65536
# Seconds spent counting the connections the server holds once the attacker's are open.
COUNTING_S: Final[float] = 1.0


@dataclass
class Outcome:
    """The status lines the attacker got, and the seconds until the server had closed its connections."""

    statuses: Counter[bytes] = field(default_factory=Counter)
    closed_after_s: float = 0.0
    held: int = 0  # of the attacker's connections the server held once they were all open

    def line(self) -> str:
        """One line of figures."""
        shown = ", ".join(
            f"{count} x {status.decode(errors='replace') or 'none'}" for status, count in self.statuses.items()
        )
        return f"attacker: {shown}; {self.held} held, all closed after {self.closed_after_s:.1f} s"


def static_readers(port: int, pid: int, conns: int, wait_s: float) -> Outcome:
    """`conns` connections ask for the 1.7 MB Swagger bundle and read only its first line."""
    baseline = open_sockets(pid)  # the listener (a normal client's connection comes and goes in milliseconds)
    socks = []
    for _ in range(conns):
        sock = connect(port, rcvbuf=4096)
        sock.sendall(STATIC_BUNDLE)
        socks.append(sock)
    held = most_held(pid, baseline, COUNTING_S)
    outcome = Outcome(Counter(status_line(sock) for sock in socks), held=held)
    outcome.closed_after_s = COUNTING_S + wait_released(pid, baseline, wait_s)  # from the last byte sent
    for sock in socks:
        sock.close()
    return outcome


def pipelined_readers(port: int, pid: int, conns: int, rows: int, depth: int, wait_s: float) -> Outcome:
    """`conns` connections each pipeline `depth` requests of `rows` passengers and never read an answer."""
    baseline = open_sockets(pid)
    request = post(batch(rows)) * depth
    socks = []
    for _ in range(conns):
        sock = connect(port, rcvbuf=4096)
        sock.settimeout(0.5)
        with contextlib.suppress(OSError):
            sock.sendall(request)  # the server may stop reading the pipeline: that is allowed
        socks.append(sock)
    outcome = Outcome(Counter({b"(not read)": conns}), held=most_held(pid, baseline, COUNTING_S))
    outcome.closed_after_s = COUNTING_S + wait_released(pid, baseline, wait_s)  # from the last byte sent
    for sock in socks:
        sock.close()
    return outcome


def endless(port: int, start: bytes, piece: bytes, seconds: float) -> Outcome:
    """One connection sends `start`, then `piece` after `piece` for up to `seconds` or until it is closed."""
    sock = connect(port)
    sock.settimeout(1.0)
    began = time.monotonic()
    try:
        sock.sendall(start)
        while time.monotonic() - began < seconds and not server_closed(sock):
            sock.sendall(piece)
    except OSError:
        pass
    took = time.monotonic() - began
    outcome = Outcome(Counter([status_line(sock)]), took)
    sock.close()
    return outcome


def endless_trailer(port: int, seconds: float) -> Outcome:
    """A chunked body that ends, followed by a trailer field that never does."""
    body = b"%x\r\n%s\r\n0\r\nX-Trailer: " % (len(SINGLE), SINGLE)
    return endless(port, CHUNKED_HEAD + body, PIECE, seconds)


def one_byte_chunks(port: int, seconds: float) -> Outcome:
    """A chunked body of one-byte chunks, as many as the server takes."""
    return endless(port, CHUNKED_HEAD, b"1\r\n \r\n" * 10_000, seconds)


def chunk_extension(port: int, seconds: float) -> Outcome:
    """A chunk size line whose extension never ends."""
    return endless(port, CHUNKED_HEAD + b"10;ext=", PIECE, seconds)


def repeated_posts(port: int, clients: int, body: bytes, seconds: float, per_s: float) -> Outcome:
    """`clients` threads each post `body` `per_s` times a second for `seconds`, reading each answer's status line."""
    statuses: Counter[bytes] = Counter()
    lock = threading.Lock()
    request = post(body)
    stop = time.monotonic() + seconds

    def client(_: int) -> None:
        while time.monotonic() < stop:
            began = time.monotonic()
            try:
                with connect(port) as sock:
                    sock.sendall(request)
                    status = status_line(sock)
            except OSError:
                status = b"(connection failed)"
            with lock:
                statuses[status] += 1
            time.sleep(max(0.0, 1 / per_s - (time.monotonic() - began)))

    for thread in in_threads(clients, client):
        thread.join(seconds + 15)
    return Outcome(statuses)


def big_bodies(port: int, clients: int, rows: int, seconds: float, per_s: float, size: int = 0) -> Outcome:
    """Completed big bodies (`rows` passengers, padded with JSON whitespace to `size` bytes), more at once than
    the one batch thread can take."""
    body = batch(rows)
    return repeated_posts(port, clients, body[:-1] + b" " * max(0, size - len(body)) + b"}", seconds, per_s)


def key_floods(port: int, clients: int, size: int, seconds: float, per_s: float) -> Outcome:
    """Bodies that are one JSON object of distinct keys."""
    return repeated_posts(port, clients, key_flood(size), seconds, per_s)


def uploads_under_churn(port: int, uploads: int, size: int, rate: int, churn_per_s: float, seconds: float) -> Outcome:
    """`uploads` uploads of `size` bytes at `rate` bytes/s while idle connections are opened `churn_per_s`."""
    statuses: Counter[bytes] = Counter()
    lock = threading.Lock()
    body = b" " * (size - len(SINGLE)) + SINGLE
    piece = rate // 10
    stop = threading.Event()

    def upload(_: int) -> None:
        try:
            with connect(port) as sock:
                sock.sendall(PREDICT_HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
                for offset in range(0, len(body), piece):
                    sock.sendall(body[offset : offset + piece])
                    time.sleep(0.1)
                status = status_line(sock)
        except OSError:
            status = b"(dropped)"
        with lock:
            statuses[status] += 1

    def churn(_: int) -> None:
        idle: list[socket.socket] = []
        while not stop.wait(1 / churn_per_s):
            with contextlib.suppress(OSError):
                idle.append(connect(port))
        for sock in idle:
            sock.close()

    churner = in_threads(1, churn)
    time.sleep(min(1.0, seconds / 4))  # the churn fills the connection slots first
    for thread in in_threads(uploads, upload):
        thread.join(seconds + 15)
    stop.set()
    churner[0].join()
    return Outcome(statuses)
