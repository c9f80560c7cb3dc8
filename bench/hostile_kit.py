"""Hostile clients and a normal client measuring alongside them, on loopback only.

Shared by bench/bench_hostile.py (full-size figures) and tests/service/server/test_hostile_load.py (reduced, in CI). The
normal client is open loop: one single-passenger POST /predict every `interval_s` on a new connection, sent on
schedule whether or not earlier ones were answered, its latency counted from the moment it was due.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

HOST: Final[str] = "127.0.0.1"
SINGLE: Final[bytes] = b'{"pclass": 3, "fare": 7.25, "age": 22}'
PREDICT_HEAD: Final[bytes] = b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
NORMAL_REQUEST: Final[bytes] = PREDICT_HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (
    len(SINGLE),
    SINGLE,
)
ROW: Final[bytes] = b'{"pclass":1,"fare":10.5,"age":30}'
# Linux TCP states (include/net/tcp_states.h): the server has closed its side (FIN: CLOSE_WAIT; RST: CLOSE).
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8


@dataclass
class Figures:
    """What the normal client saw."""

    sent: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """The q-th percentile of the latencies (ms); inf when nothing was answered."""
        if not self.latencies_ms:
            return float("inf")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def line(self) -> str:
        """One line of figures."""
        return (
            f"normal: {self.sent} sent, {self.failed} failed, p50 {self.percentile(50):.1f} ms, "
            f"p99 {self.percentile(99):.1f} ms, max {max(self.latencies_ms, default=float('inf')):.1f} ms"
        )


class NormalClient:
    """One single-passenger request every `interval_s`, open loop, each on its own connection, in a thread."""

    def __init__(self, port: int, interval_s: float = 0.05, timeout_s: float = 10.0) -> None:
        self.port = port
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.figures = Figures()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> NormalClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 5)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, tasks = loop.time(), set()
        while not self._stop.is_set():
            due = start + self.figures.sent * self.interval_s
            await asyncio.sleep(max(0.0, due - loop.time()))
            task = asyncio.create_task(self._one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.figures.sent += 1
        await asyncio.gather(*tasks)

    async def _one(self, due: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_connection(HOST, self.port)
                writer.write(NORMAL_REQUEST)
                answer = await reader.read()
                writer.close()
            ok = answer.startswith(b"HTTP/1.1 200")
        except (OSError, TimeoutError):
            ok = False
        if ok:
            self.figures.latencies_ms.append((loop.time() - due) * 1000)
        else:
            self.figures.failed += 1


class Memory:
    """The peak resident memory of a process (from /proc), sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mib = self.now_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def now_mib(self) -> float:
        """Resident memory now, MiB."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mib = max(self.peak_mib, self.now_mib())

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    """A raw loopback connection (`rcvbuf`: a small receive buffer, for a client that reads little)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((HOST, port))
    return sock


def server_closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (read from the kernel's TCP state; nothing is read)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return struct.unpack("B", info[:1])[0] in (TCP_CLOSE, TCP_CLOSE_WAIT)


def most_held(pid: int, baseline: int, seconds: float = 1.0) -> int:
    """The most sockets over `baseline` the server holds within `seconds` (it may accept late when busy)."""
    most, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        most = max(most, open_sockets(pid) - baseline)
        time.sleep(0.05)
    return most


def wait_released(pid: int, baseline: int, timeout_s: float) -> float:
    """Seconds until the server holds no more sockets than `baseline` (inf if not within `timeout_s`).

    Counted on the server's side: a FIN it sends after an answer the client never read waits in the kernel
    behind that answer, so the client's view of the connection says little about what the server still holds.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if open_sockets(pid) <= baseline:
            return time.monotonic() - start
        time.sleep(0.05)
    return float("inf")


def status_line(sock: socket.socket) -> bytes:
    """The first line the server sends (b"" if it closes first); reads no more than that line's packet."""
    try:
        return sock.recv(64).split(b"\r\n", 1)[0]
    except (ConnectionResetError, TimeoutError):
        return b""


def batch(rows: int) -> bytes:
    """A JSON batch of `rows` passengers."""
    return b'{"passengers":[' + b",".join([ROW] * rows) + b"]}"


def post(body: bytes, extra: bytes = b"") -> bytes:
    """A complete POST /predict with `body`."""
    return PREDICT_HEAD + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def key_flood(size: int) -> bytes:
    """One JSON object of about `size` bytes of distinct keys."""
    return b"{" + b",".join(b'"k%d":1' % i for i in range(size // 10)) + b"}"


def in_threads(count: int, work: Callable[[int], None]) -> list[threading.Thread]:
    """Start `work(i)` in `count` daemon threads."""
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def open_sockets(pid: int) -> int:
    """How many sockets a process holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count
