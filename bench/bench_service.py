"""Benchmark of the prediction service over loopback HTTP: single-passenger POST /predict against a trivial endpoint.

Usage:
    .venv/bin/python bench/bench_service.py [--models DIR] [--duration 8] [--warmup 2] [--batches 10]
                                            [--client auto|wrk|httpx] [--check]

Starts ONE worker with `python -m service` and the shipped settings (the access log on, written to a file) on
127.0.0.1 at a free port, serving bench/bench_app.py: the service's app (MODEL_DIR=--models) plus
`POST /_trivial`, which reads and validates the body exactly like POST /predict and answers a constant (the
ceiling of this stack; it exists only in the benchmark's app). Without --models a quick pair of checkpoints is
trained first (5 epochs, into a temp dir). Then a second server with ACCESS_LOG=0 repeats the /predict runs at
concurrency 1 and 16, for the cost of logging.

Measures, for `{"pclass":3,"fare":7.25,"age":22}`, requests/s and p50/p99 latency of /predict (both models) and
/_trivial at concurrency 1, 16 and 64 (each: a warm-up, then a timed run), then the end-to-end time of a
10,000-passenger batch (median of --batches sequential requests). Prints a table and PASS/MISS for the targets:
/predict throughput >= 80 % of /_trivial's at concurrency 16 with p99 <= 10 ms; the batch in < 150 ms.

Load generator: Debian's `wrk` (`apt-get install -y wrk`), one thread. Without it (or with --client httpx) an
async httpx client runs in a separate process instead; on a small machine it competes with the server for CPU,
so its figures are lower. --check exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from server import HOST, models_or_quick_pair, serving

SINGLE: Final[bytes] = b'{"pclass":3,"fare":7.25,"age":22}'
ENDPOINTS: Final[dict[str, str]] = {"trivial (validate only)": "/_trivial", "predict (both models)": "/predict"}
CONCURRENCY: Final[tuple[int, ...]] = (1, 16, 64)
TARGET_CONCURRENCY: Final[int] = 16
TARGET_RATIO: Final[float] = 0.80
TARGET_P99_MS: Final[float] = 10.0
TARGET_BATCH_MS: Final[float] = 150.0
# The last line of a logged traceback: a dotted or *Error/*Exception class name, optionally with a message.
EXCEPTION_LINE: Final[re.Pattern[str]] = re.compile(
    r"^(?:[a-z_]\w*\.)+[A-Z]\w*(?::|$)|^[A-Z]\w*(?:Error|Exception)(?::|$)"
)
WRK_SCRIPT: Final[str] = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """One timed load run: throughput, latency percentiles and failed requests."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_endpoints(port: int) -> None:
    """Refuse to time anything unless both endpoints answer the benchmark body correctly."""
    for path in ENDPOINTS.values():
        status, body = request(port, "POST", path, SINGLE)
        if status != 200:
            raise RuntimeError(f"POST {path} answered {status}: {body[:300]!r}")
    answer = json.loads(request(port, "POST", "/predict", SINGLE)[1])
    if set(answer["predictions"][0]) != {"batchnorm", "plain"}:
        raise RuntimeError(f"POST /predict did not answer with both models: {answer}")


def run_wrk(wrk: str, script: Path, url: str, concurrency: int, seconds: float) -> Load:
    """One wrk run (one thread, `concurrency` connections) and its summary from the script's done()."""
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next((row for row in out.splitlines() if row.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"no summary in wrk's output:\n{out}")
    requests, duration_us, p50_us, p99_us, errors = (int(field) for field in line.split()[1:])
    return Load(requests, duration_us / 1e6, p50_us / 1e3, p99_us / 1e3, errors)


async def _httpx_load(url: str, concurrency: int, seconds: float) -> Load:
    """`concurrency` closed-loop clients POSTing the single passenger for `seconds`."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=SINGLE, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - sent)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies) or [0.0]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return Load(len(latencies), elapsed, pct(0.50), pct(0.99), errors)


def httpx_load(url: str, concurrency: int, seconds: float) -> Load:
    """Entry point of the client process: run the async load and return its summary."""
    return asyncio.run(_httpx_load(url, concurrency, seconds))


def measure(client: str, port: int, path: str, concurrency: int, warmup: float, duration: float, work: Path) -> Load:
    """Warm up, then time one endpoint at one concurrency with the chosen load generator."""
    url = f"http://{HOST}:{port}{path}"
    if client == "httpx":
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            if warmup > 0:
                pool.submit(httpx_load, url, concurrency, warmup).result()
            return pool.submit(httpx_load, url, concurrency, duration).result()
    wrk = shutil.which("wrk")
    assert wrk is not None
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.replace("{body}", SINGLE.decode()))
    if warmup > 0:
        run_wrk(wrk, script, url, concurrency, warmup)
    return run_wrk(wrk, script, url, concurrency, duration)


def at_once(client: str, ports: list[int], path: str, concurrency: int, seconds: float, work: Path) -> list[Load]:
    """Load several servers at the same time, `concurrency` connections each, one load generator per server."""
    urls = [f"http://{HOST}:{port}{path}" for port in ports]
    if client == "httpx":
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(urls), mp_context=context) as procs:
            return list(procs.map(httpx_load, urls, [concurrency] * len(urls), [seconds] * len(urls)))
    wrk = shutil.which("wrk")
    assert wrk is not None
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.replace("{body}", SINGLE.decode()))
    with ThreadPoolExecutor(max_workers=len(urls)) as threads:  # each thread waits on its own wrk process
        return list(threads.map(lambda url: run_wrk(wrk, script, url, concurrency, seconds), urls))


def batch_body(size: int) -> bytes:
    """A seeded batch of `size` valid passengers, about one in five without an age."""
    rng = random.Random(0)
    passengers: list[dict[str, Any]] = [
        {
            "pclass": rng.choice((1, 2, 3)),
            "fare": round(rng.uniform(0.0, 250.0), 4),
            "age": None if rng.random() < 0.2 else round(rng.uniform(0.5, 80.0), 1),
        }
        for _ in range(size)
    ]
    return json.dumps({"passengers": passengers}, separators=(",", ":")).encode()


def time_batches(port: int, size: int, repeats: int) -> list[float]:
    """Milliseconds per batch request, end to end (send, server work, whole answer read), one kept-alive connection."""
    body = batch_body(size)
    headers = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    times: list[float] = []
    try:
        for i in range(repeats + 1):  # the first one is a warm-up
            start = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            elapsed = (time.perf_counter() - start) * 1e3
            if response.status != 200:
                raise RuntimeError(f"the batch was answered {response.status}: {answer[:300]!r}")
            if i == 0:
                rows = len(json.loads(answer)["predictions"])
                if rows != size:
                    raise RuntimeError(f"the batch of {size} was answered with {rows} predictions")
            else:
                times.append(elapsed)
    finally:
        conn.close()
    return times


def logged_exceptions(log: str) -> dict[str, int]:
    """Exception classes at the end of the tracebacks in the server's log, with their counts."""
    counts: dict[str, int] = {}
    for line in log.splitlines():
        if EXCEPTION_LINE.match(line):
            name = line.split(":", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def wrk_version(wrk: str) -> str:
    """wrk's version line (it prints it with a usage text and exits 1)."""
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].split(" [")[0]


def main() -> int:
    """Parse options, start the server, measure, print the table and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", type=Path, help="checkpoint directory (default: train a 5-epoch pair into a temp dir)"
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per timed load run (default: 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default: 2)")
    parser.add_argument("--batches", type=int, default=10, help="timed 10,000-passenger requests (default: 10)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="passengers per batch (default: 10000)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto", help="load generator")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    wrk = shutil.which("wrk")
    client = args.client if args.client != "auto" else ("wrk" if wrk else "httpx")
    if client == "wrk" and wrk is None:
        parser.error("wrk is not installed (Debian: apt-get install -y wrk); use --client httpx")
    if args.models is not None and not args.models.is_dir():
        parser.error(f"--models {args.models}: no such directory")

    import fastapi
    import uvicorn

    generator = f"{wrk_version(wrk)}, 1 thread" if client == "wrk" and wrk else "async httpx client, separate process"
    print(
        f"python {platform.python_version()}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}"
        f" (1 worker), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"load generator: {generator}; {args.warmup:g} s warm-up + {args.duration:g} s per run; loopback only")
    if client == "httpx":
        print("note: wrk not used; the Python client shares the CPUs with the server, so throughput reads low")

    with tempfile.TemporaryDirectory(prefix="bench_service_") as tmp:
        work = Path(tmp)
        model_dir = models_or_quick_pair(args.models, work)
        results: dict[tuple[str, int], Load] = {}
        with serving("bench_app:app", model_dir, work / "server.log") as (port, _):
            check_endpoints(port)
            print(f"server ready on {HOST}:{port} (models from {model_dir})\n", flush=True)
            header = f"{'endpoint':<24}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}"
            print(header)
            print("-" * len(header))
            for concurrency in CONCURRENCY:
                # Interleaved per concurrency so that drift in the machine's load hits both alike.
                for label, path in ENDPOINTS.items():
                    load = measure(client, port, path, concurrency, args.warmup, args.duration, work)
                    results[label, concurrency] = load
                    print(
                        f"{label:<24}{concurrency:>5}{load.rps:>10.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}"
                        f"{load.requests:>10}{load.errors:>8}",
                        flush=True,
                    )
            batch_ms = time_batches(port, args.batch_size, args.batches)
        quiet: dict[int, Load] = {}
        with serving("bench_app:app", model_dir, work / "server-quiet.log", access_log=False) as (port, _):
            for concurrency in (1, TARGET_CONCURRENCY):
                load = quiet[concurrency] = measure(
                    client, port, "/predict", concurrency, args.warmup, args.duration, work
                )
                print(
                    f"{'predict, access log off':<24}{concurrency:>5}{load.rps:>10.0f}{load.p50_ms:>9.2f}"
                    f"{load.p99_ms:>9.2f}{load.requests:>10}{load.errors:>8}",
                    flush=True,
                )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        logged = logged_exceptions((work / "server.log").read_text(errors="replace"))
        if logged:
            # Each traceback is logged twice (the app's handler, then uvicorn), so these are line counts.
            shown = ", ".join(f"{name} x{count}" for name, count in sorted(logged.items()))
            print(f"note: server log, tracebacks by final exception line: {shown}")

    trivial_label, predict_label = ENDPOINTS
    trivial, predict = results[trivial_label, TARGET_CONCURRENCY], results[predict_label, TARGET_CONCURRENCY]
    ratio = predict.rps / trivial.rps if trivial.rps else 0.0
    median_ms = statistics.median(batch_ms)
    errors = sum(load.errors for load in results.values())
    checks = [
        (
            f"predict/trivial throughput at concurrency {TARGET_CONCURRENCY}: {ratio:.1%}"
            f" ({predict.rps:.0f} / {trivial.rps:.0f} req/s; target >= {TARGET_RATIO:.0%})",
            ratio >= TARGET_RATIO,
        ),
        (
            f"predict p99 at concurrency {TARGET_CONCURRENCY}: {predict.p99_ms:.2f} ms"
            f" (target <= {TARGET_P99_MS:g} ms)",
            predict.p99_ms <= TARGET_P99_MS,
        ),
        (
            f"{args.batch_size:,}-passenger batch, end to end: median {median_ms:.1f} ms"
            f" (min {min(batch_ms):.1f}, max {max(batch_ms):.1f}, n={len(batch_ms)}; target < {TARGET_BATCH_MS:g} ms)",
            median_ms < TARGET_BATCH_MS,
        ),
        (f"failed requests during the load runs: {errors}", errors == 0),
    ]
    for text, ok in checks:
        print(f"{verdict(ok)}  {text}")
    for concurrency, off in quiet.items():
        on = results[predict_label, concurrency]
        cost = 1 - on.rps / off.rps if off.rps else 0.0
        print(
            f"INFO  cost of the access log at concurrency {concurrency}: {cost:.1%} of throughput "
            f"({on.rps:.0f} vs {off.rps:.0f} req/s), p99 {on.p99_ms:.2f} vs {off.p99_ms:.2f} ms"
        )
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
