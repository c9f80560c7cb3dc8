"""Load test of the prediction service over loopback: a fixed number of mixed requests, errors, latency and RSS.

Usage:
    .venv/bin/python bench/bench_load.py [--models DIR] [--requests 20000] [--concurrency 64]
                                         [--batch-share 0.10] [--csv-share 0.01] [--warmup 2000]
                                         [--client raw|httpx] [--max-seconds 600] [--json FILE] [--check]

Starts the shipped server (`python -m service`, one worker, access log and monitoring on) on 127.0.0.1 at a free
port with MODEL_DIR=--models; without --models a quick pair of checkpoints is trained first (5 epochs, into a temp
dir). An asyncio client in a separate process then sends exactly --requests POST /predict requests at --concurrency
(one kept-alive connection per worker): about 89 % single passengers (JSON), 10 % batches of 100 (JSON) and 1 %
Kaggle-style CSV (20 rows, half of them asking for a submission CSV back), from seeded pools of distinct bodies. A
request counts as an error unless it is answered 200 with the expected kind of body; a transport error or a timeout
counts too.

Reports errors, requests/s, p50/p99 latency (overall and per kind) and the server's resident memory (VmRSS from
/proc/<pid>/status) when ready, after a warm-up of --warmup requests, and after the run. Targets: 0 errors and
RSS growth under 10 % from after the warm-up to after the run (the first requests fill one-off caches, which is
not growth under load; the growth from "ready" is printed too). --check exits 1 when a target is missed.
Bounded: the run stops at --max-seconds whatever it has sent (unsent requests count as errors).

Load generator (--client): `raw`, a minimal HTTP/1.1 client on asyncio streams (the default), or `httpx`, an
httpx.AsyncClient. On a 2-core machine the client shares the CPUs with the server, and httpx spends several
times the server's CPU per request, so its run measures mostly the client; the CPU time each side used is
printed so the two can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from server import HOST, models_or_quick_pair, serving

REQUEST_TIMEOUT_S: Final[float] = 30.0
TARGET_RSS_GROWTH: Final[float] = 0.10
BATCH_SIZE: Final[int] = 100
CSV_ROWS: Final[int] = 20
POOL_SIZE: Final[int] = 64  # distinct bodies per kind
SEED: Final[int] = 0
KINDS: Final[tuple[str, ...]] = ("single", "batch", "csv")


@dataclass(frozen=True)
class Planned:
    """One request to send: its kind, body, headers and what a correct answer starts with."""

    kind: str
    body: bytes
    headers: dict[str, str]
    expect_prefix: bytes


@dataclass
class Tally:
    """What the client saw: latencies per kind, errors and a few examples of them."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: int = 0
    unsent: int = 0
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the client process's own CPU time

    def record(self, kind: str, seconds: float, ok: bool, problem: str) -> None:
        """Count one answered (or failed) request."""
        self.latencies[kind].append(seconds)
        if not ok:
            self.errors += 1
            if len(self.samples) < 5:
                self.samples.append(problem)


def vm_rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def passenger(rng: random.Random) -> dict[str, Any]:
    """A random valid passenger, about one in five without an age."""
    age = None if rng.random() < 0.2 else round(rng.uniform(0.5, 80.0), 1)
    return {"pclass": rng.choice((1, 2, 3)), "fare": round(rng.uniform(0.0, 300.0), 4), "age": age}


def csv_body(rng: random.Random, first_id: int) -> bytes:
    """A Kaggle test.csv-style body of CSV_ROWS passengers, with the columns the service ignores."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["PassengerId", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin"])
    for i in range(CSV_ROWS):
        p = passenger(rng)
        age = "" if p["age"] is None else p["age"]
        writer.writerow([first_id + i, p["pclass"], "Doe, Mr. John", "male", age, 0, 0, "A/5 21171", p["fare"], ""])
    return out.getvalue().encode()


def plan_requests(n: int, batch_share: float, csv_share: float) -> list[Planned]:
    """The seeded sequence of `n` requests: single passengers, batches of BATCH_SIZE and a few CSV bodies."""
    rng = random.Random(SEED)
    json_headers = {"Content-Type": "application/json"}
    singles = [json.dumps(passenger(rng)).encode() for _ in range(POOL_SIZE)]
    batches = [json.dumps({"passengers": [passenger(rng) for _ in range(BATCH_SIZE)]}).encode() for _ in range(8)]
    csvs = [csv_body(rng, 892 + i * CSV_ROWS) for i in range(8)]
    planned = []
    for i in range(n):
        draw = rng.random()
        if draw < csv_share:
            # Half ask for a Kaggle submission file back, half for JSON.
            wants_csv = i % 2 == 0
            headers = {"Content-Type": "text/csv", "Accept": "text/csv" if wants_csv else "application/json"}
            prefix = b"PassengerId,Survived\n" if wants_csv else b'{"predictions":['
            planned.append(Planned("csv", rng.choice(csvs), headers, prefix))
        elif draw < csv_share + batch_share:
            planned.append(Planned("batch", rng.choice(batches), json_headers, b'{"predictions":['))
        else:
            planned.append(Planned("single", rng.choice(singles), json_headers, b'{"predictions":['))
    return planned


async def _drive_httpx(port: int, planned: list[Planned], concurrency: int, max_seconds: float) -> Tally:
    """`concurrency` closed-loop httpx workers sharing one queue of planned requests, until done or out of time."""
    import httpx

    tally = Tally()
    queue = iter(planned)
    url = f"http://{HOST}:{port}/predict"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        start, cpu_start = time.perf_counter(), time.process_time()
        deadline = start + max_seconds

        async def worker() -> None:
            for item in queue:
                if time.perf_counter() > deadline:
                    tally.unsent += 1
                    continue
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=item.body, headers=item.headers)
                    ok = response.status_code == 200 and response.content.startswith(item.expect_prefix)
                    problem = f"{item.kind}: {response.status_code} {response.content[:200]!r}"
                except httpx.HTTPError as exc:
                    ok, problem = False, f"{item.kind}: {type(exc).__name__}: {exc}"
                tally.record(item.kind, time.perf_counter() - sent, ok, problem)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        tally.seconds, tally.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return tally


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], item: Planned, port: int
) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 request on a kept-alive connection: (status, body, whether the server keeps it open)."""
    reader, writer = conn
    head = f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: {len(item.body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in item.headers.items())
    writer.write(head.encode("latin-1") + b"\r\n" + item.body)
    await writer.drain()
    status_line, _, header_block = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" not in headers:
        raise ValueError(f"an answer without Content-Length: {status_line!r}")
    body = await reader.readexactly(int(headers[b"content-length"]))
    return int(status_line.split()[1]), body, headers.get(b"connection", b"").lower() != b"close"


async def _drive_raw(port: int, planned: list[Planned], concurrency: int, max_seconds: float) -> Tally:
    """`concurrency` closed-loop workers, each on its own kept-alive connection, speaking minimal HTTP/1.1."""
    tally = Tally()
    queue = iter(planned)
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + max_seconds

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for item in queue:
            if time.perf_counter() > deadline:
                tally.unsent += 1
                continue
            sent = time.perf_counter()
            keep = False
            try:
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                status, body, keep = await asyncio.wait_for(_exchange(conn, item, port), REQUEST_TIMEOUT_S)
                ok = status == 200 and body.startswith(item.expect_prefix)
                problem = f"{item.kind}: {status} {body[:200]!r}"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                ok, problem = False, f"{item.kind}: {type(exc).__name__}: {exc}"
            tally.record(item.kind, time.perf_counter() - sent, ok, problem)
            if conn is not None and not keep:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.seconds, tally.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return tally


def drive(client: str, port: int, planned: list[Planned], concurrency: int, max_seconds: float) -> Tally:
    """Entry point of the client process: run the async load with the chosen client and return what it saw."""
    run = _drive_raw if client == "raw" else _drive_httpx
    return asyncio.run(run(port, planned, concurrency, max_seconds))


def percentile_ms(values: list[float], q: float) -> float:
    """The q-quantile of `values` (seconds) in milliseconds, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main() -> int:
    """Parse options, start the server, warm it up, send the load, print the figures and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="checkpoint directory (default: train a 5-epoch pair)")
    parser.add_argument("--requests", type=int, default=20_000, help="requests in the timed run (default: 20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent connections (default: 64)")
    parser.add_argument("--batch-share", type=float, default=0.10, help="share of batch requests (default: 0.10)")
    parser.add_argument("--csv-share", type=float, default=0.01, help="share of CSV requests (default: 0.01)")
    parser.add_argument("--warmup", type=int, default=2_000, help="requests before the 'before' RSS (default: 2000)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop the run after this (default: 600)")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: minimal asyncio HTTP/1.1 (default; ~10x less client CPU) or httpx.AsyncClient",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if args.models is not None and not args.models.is_dir():
        parser.error(f"--models {args.models}: no such directory")
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be >= 1")

    import fastapi
    import httpx
    import uvicorn

    print(
        f"python {platform.python_version()}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__} (1 worker),"
        f" httpx {httpx.__version__}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; loopback only"
    )
    print(f"load generator: {args.client} asyncio client in a separate process")
    planned = plan_requests(args.requests, args.batch_share, args.csv_share)
    warmup = plan_requests(args.warmup, args.batch_share, args.csv_share)
    counts = {kind: sum(p.kind == kind for p in planned) for kind in KINDS}
    passengers = counts["single"] + counts["batch"] * BATCH_SIZE + counts["csv"] * CSV_ROWS
    print(
        f"plan: {args.requests} POST /predict at concurrency {args.concurrency}: {counts['single']} single, "
        f"{counts['batch']} batches of {BATCH_SIZE}, {counts['csv']} CSV of {CSV_ROWS} rows "
        f"({passengers:,} passengers); warm-up {args.warmup} requests"
    )

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp, ProcessPoolExecutor(1, mp_context=context) as pool:
        work = Path(tmp)
        model_dir = models_or_quick_pair(args.models, work)
        with serving("service.main:app", model_dir, work / "server.log") as (port, pid):
            rss_ready = vm_rss_kib(pid)
            warm = pool.submit(drive, args.client, port, warmup, args.concurrency, args.max_seconds).result()
            rss_before, cpu_before = vm_rss_kib(pid), cpu_seconds(pid)
            tally = pool.submit(drive, args.client, port, planned, args.concurrency, args.max_seconds).result()
            rss_after, server_cpu = vm_rss_kib(pid), cpu_seconds(pid) - cpu_before
            # uvicorn's own messages, not the access log's JSON lines (one per request).
            lines = (work / "server.log").read_text(errors="replace").splitlines()
            server_log = "\n".join(line for line in lines if not line.startswith('{"time"')).strip()

    done = sum(len(v) for v in tally.latencies.values())
    every = [x for v in tally.latencies.values() for x in v]
    errors = tally.errors + tally.unsent
    growth = (rss_after - rss_before) / rss_before
    growth_ready = (rss_after - rss_ready) / rss_ready
    print(f"server on {HOST}:{port}, pid {pid}; warm-up: {warm.errors} errors in {warm.seconds:.1f} s")
    print(
        f"run: {done} of {args.requests} requests in {tally.seconds:.1f} s = {done / tally.seconds:.0f} req/s "
        f"({passengers / tally.seconds:,.0f} passengers/s); errors {errors} (unsent {tally.unsent})"
    )
    print(
        f"CPU time during the run: server {server_cpu:.1f} s ({server_cpu / max(done, 1) * 1e3:.2f} ms/request), "
        f"client {tally.cpu_seconds:.1f} s ({tally.cpu_seconds / max(done, 1) * 1e3:.2f} ms/request); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"latency all: p50 {percentile_ms(every, 0.5):.1f} ms, p99 {percentile_ms(every, 0.99):.1f} ms")
    for kind in KINDS:
        values = tally.latencies[kind]
        print(
            f"latency {kind:<6}: n={len(values):<6} p50 {percentile_ms(values, 0.5):.1f} ms,"
            f" p99 {percentile_ms(values, 0.99):.1f} ms"
        )
    print(
        f"server RSS: ready {rss_ready / 1024:.1f} MiB, after warm-up {rss_before / 1024:.1f} MiB, "
        f"after the run {rss_after / 1024:.1f} MiB: {growth:+.1%} over the run ({growth_ready:+.1%} since ready)"
    )
    for sample in tally.samples:
        print(f"  error: {sample}")
    if server_log:
        print(f"server log (warnings and errors):\n{server_log[-2000:]}")
    checks = [
        (f"errors: {errors} (target 0)", errors == 0),
        (f"RSS growth over the run: {growth:+.1%} (target < {TARGET_RSS_GROWTH:.0%})", growth < TARGET_RSS_GROWTH),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    if args.json is not None:
        figures = {
            "requests": args.requests,
            "completed": done,
            "concurrency": args.concurrency,
            "kinds": counts,
            "errors": errors,
            "seconds": tally.seconds,
            "requests_per_s": done / tally.seconds,
            "p50_ms": percentile_ms(every, 0.5),
            "p99_ms": percentile_ms(every, 0.99),
            "per_kind_ms": {k: [percentile_ms(v, 0.5), percentile_ms(v, 0.99)] for k, v in tally.latencies.items()},
            "rss_kib": {"ready": rss_ready, "after_warmup": rss_before, "after_run": rss_after},
            "rss_growth": growth,
            "cpu_seconds": {"server": server_cpu, "client": tally.cpu_seconds},
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
