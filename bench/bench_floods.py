"""Bounded floods on loopback against `python -m service`: are normal clients still served, is memory bounded?

Usage:
    .venv/bin/python bench/bench_floods.py [--models DIR] [--duration 8] [--stalled 5000] [--headers 8]
                                           [--uploads 50] [--client auto|wrk|httpx]

Starts one worker with the shipped settings (access log on, into a file) and measures normal clients
(wrk: one thread, 8 keep-alive connections POSTing one passenger; an async Python client without wrk)
for --duration seconds: alone, then during each flood. Each flood runs in a separate process that keeps
its connections open, reopening (after a second) whatever the server closes:
- stalled: --stalled connections that send half a request head and stop;
- headers: --headers connections that each send an endless header (32 MiB, in 64 KiB pieces);
- uploads: --uploads uploads that declare 4 MiB and stop one byte short.
Prints, per flood: the normal clients' requests/s, p50, p99 and errors; the server's resident memory
(peak during the flood and after it); its open connections at the end of the measurement; and how
many flood connections were opened, closed by the server, or failed to connect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench_service import Load, measure
from server import HOST, models_or_quick_pair, serving

UPLOAD_BYTES: Final[int] = 4 * 1024 * 1024
HEADER_BYTES: Final[int] = 32 * 1024 * 1024
PIECE: Final[bytes] = b"h" * 65536
REOPEN_AFTER_S: Final[float] = 1.0
RAMP_S: Final[float] = 3.0
NORMAL_CONCURRENCY: Final[int] = 8


def raise_file_limit() -> int:
    """This process's soft file limit raised to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the flood (run in its own process: `bench_floods.py --flood KIND PORT COUNT SECONDS`) -------------------------


async def feed(kind: str, writer: asyncio.StreamWriter) -> None:
    """Send what this kind of flood sends on one connection, then stop."""
    if kind == "stalled":
        writer.write(b"POST /predict HTTP/1.1\r\nHost: flood\r\nContent-Type: appl")
    elif kind == "headers":
        writer.write(b"GET /health HTTP/1.1\r\nHost: flood\r\nX-Endless: ")
        for _ in range(HEADER_BYTES // len(PIECE)):
            writer.write(PIECE)
            await writer.drain()
    else:
        head = "POST /predict HTTP/1.1\r\nHost: flood\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {UPLOAD_BYTES}\r\n\r\n".encode())
        for _ in range(UPLOAD_BYTES // len(PIECE) - 1):
            writer.write(PIECE)
            await writer.drain()
        writer.write(PIECE[:-1])
    await writer.drain()


async def flood(kind: str, port: int, count: int, seconds: float) -> dict[str, int]:
    """Keep `count` connections of this kind open for `seconds`; what happened to them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    stats = {"opened": 0, "closed_by_server": 0, "connect_failed": 0}
    connecting = asyncio.Semaphore(256)

    async def slot() -> None:
        while loop.time() < deadline:
            try:
                async with connecting:
                    reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                stats["connect_failed"] += 1
                await asyncio.sleep(REOPEN_AFTER_S)
                continue
            stats["opened"] += 1
            try:
                await feed(kind, writer)
                await asyncio.wait_for(reader.read(), max(0.0, deadline - loop.time()))
                stats["closed_by_server"] += 1
            except TimeoutError:
                pass
            except OSError:
                stats["closed_by_server"] += 1
            finally:
                writer.close()
            await asyncio.sleep(REOPEN_AFTER_S)

    await asyncio.gather(*(slot() for _ in range(count)))
    return stats


def run_flood(kind: str, port: int, count: int, seconds: float) -> int:
    """Entry point of the flood process: prints its stats as JSON."""
    raise_file_limit()
    print(json.dumps(asyncio.run(flood(kind, port, count, seconds))), flush=True)
    return 0


# --- the measurement ----------------------------------------------------------------------------------------------


class Sampler:
    """The server's resident memory, sampled every 0.1 s in a thread: the peak of the current window."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss_kib(self) -> int:
        """VmRSS of the server now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def open_sockets(self) -> int:
        """Sockets the server holds now."""
        count = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except OSError:  # closed while listing
                continue
        return count

    def reset(self) -> None:
        """Start a new window."""
        self.peak_kib = self.rss_kib()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak_kib = max(self.peak_kib, self.rss_kib())
            except OSError:
                return

    def stop(self) -> None:
        """End sampling."""
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    name: str
    load: Load
    peak_mib: float
    after_mib: float
    sockets: int
    flood: dict[str, int]


def main() -> int:
    """Parse options, start the server, measure alone and under each flood, print the table."""
    if len(sys.argv) == 6 and sys.argv[1] == "--flood":
        return run_flood(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="checkpoint directory (default: train a 5-epoch pair)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of normal load per run (default: 8)")
    parser.add_argument("--stalled", type=int, default=5000, help="stalled connections (default: 5000)")
    parser.add_argument("--headers", type=int, default=8, help="endless-header connections (default: 8)")
    parser.add_argument("--uploads", type=int, default=50, help="stalled 4 MiB uploads (default: 50)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto", help="normal clients' tool")
    args = parser.parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    limit = raise_file_limit()
    stalled = min(args.stalled, limit - 256)
    floods = {"stalled": stalled, "headers": args.headers, "uploads": args.uploads}
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"file limit {limit}; normal clients: {client}, {NORMAL_CONCURRENCY} connections, {args.duration:g} s"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_floods_") as tmp:
        work = Path(tmp)
        model_dir = models_or_quick_pair(args.models, work)
        with serving("service.main:app", model_dir, work / "server.log", access_log=True) as (port, pid):
            sampler = Sampler(pid)
            sampler.reset()
            load = measure(client, port, "/predict", NORMAL_CONCURRENCY, 1.0, args.duration, work)
            rows.append(
                Row("none", load, sampler.peak_kib / 1024, sampler.rss_kib() / 1024, sampler.open_sockets(), {})
            )
            for kind, count in floods.items():
                seconds = RAMP_S + args.duration + 1
                cmd = [sys.executable, __file__, "--flood", kind, str(port), str(count), str(seconds)]
                sampler.reset()
                attacker = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                time.sleep(RAMP_S)
                load = measure(client, port, "/predict", NORMAL_CONCURRENCY, 0.0, args.duration, work)
                sockets = sampler.open_sockets()
                out, _ = attacker.communicate(timeout=seconds + 60)
                peak = sampler.peak_kib / 1024
                time.sleep(1.0)
                rows.append(Row(f"{kind} x{count}", load, peak, sampler.rss_kib() / 1024, sockets, json.loads(out)))
            sampler.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    header = (
        f"{'flood':<16}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'RSS peak':>10}{'after':>8}"
        f"{'sockets':>9}   flood connections"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        flood_text = ", ".join(f"{k} {v}" for k, v in row.flood.items()) or "-"
        print(
            f"{row.name:<16}{row.load.rps:>8.0f}{row.load.p50_ms:>9.2f}{row.load.p99_ms:>9.2f}{row.load.errors:>8}"
            f"{row.peak_mib:>8.0f}MB{row.after_mib:>6.0f}MB{row.sockets:>9}   {flood_text}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
