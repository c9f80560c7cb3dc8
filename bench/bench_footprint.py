"""Footprint of one API worker: whole-process cold start to /ready, and resident memory, without and with torch.

Usage:
    .venv/bin/python bench/bench_footprint.py [--models DIR] [--repeats 5] [--check]

Starts the shipped server, `python -m service` (one worker, 127.0.0.1, a free port, every other setting its
default), --repeats times and measures, from the moment the process is spawned, the time until GET /ready answers
200 (polled every 5 ms) and the CPU time the process used by then (a busy machine inflates it far less than wall
time); then, after 50 single-passenger POST /predict, one batch of 1,000 (a full monitoring window) and one GET
/monitoring (every drift test computed), the process's RSS and PSS (/proc/PID/smaps_rollup). It runs with input
monitoring on (MONITOR=1, the default) and off (MONITOR=0). For comparison: the app in a process that imported torch
first (`uvicorn service.main:app` after `import torch`), what every worker paid before the service read the
torch-free served form; and the floor of the stack, a FastAPI app with nothing but GET /ready (bench/bare_app.py)
under uvicorn. Without --models a quick pair is trained first (5 epochs, into a temp dir).

Targets (issue 11): cold start <= 0.7 s (the shipped settings), <= 80 MB per worker with monitoring off, <= 120 MB
with it on.
--check exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from server import HOST, REPO_ROOT, free_port, models_or_quick_pair, ready

TARGET_READY_S: Final[float] = 0.7
TARGET_RSS_MB: Final[float] = 80.0
TARGET_RSS_MONITOR_MB: Final[float] = 120.0
PREDICT_BODY: Final[bytes] = b'{"pclass":3,"fare":7.25,"age":22}'
# 1,000 varied passengers: the default monitoring window, full.
WINDOW_BODY: Final[bytes] = json.dumps(
    {"passengers": [{"pclass": 1 + i % 3, "fare": 5.0 + i % 200, "age": 1.0 + i % 70} for i in range(1000)]}
).encode()
UVICORN_ARGS: Final[list[str]] = ["--host", HOST, "--no-access-log", "--log-level", "warning"]
# The old footprint: the app in a process that has imported torch (as the service did until the served form).
WITH_TORCH: Final[str] = "import sys, torch; from uvicorn.main import main; sys.argv[0] = 'uvicorn'; main()"
SHIPPED: Final[str] = "python -m service (MONITOR=1)"
UNMONITORED: Final[str] = "python -m service, MONITOR=0"
OLD: Final[str] = "with torch imported (old)"
FLOOR: Final[str] = "bare FastAPI app (floor)"


@dataclass(frozen=True)
class Sample:
    """One cold start: seconds to ready and memory after some requests (MiB)."""

    ready_s: float
    cpu_s: float
    rss_mib: float
    pss_mib: float


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MiB, from /proc/PID/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        fields[key.rstrip(":")] = int(value)
    return fields["Rss"] / 1024, fields["Pss"] / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (a figure that a busy machine inflates far less than wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def expect_ok(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5) -> None:
    """One request that must answer 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path} answered {response.status}")
    finally:
        conn.close()


def command(config: str, port: int) -> list[str]:
    """The process one configuration starts."""
    if config in (SHIPPED, UNMONITORED):
        return [sys.executable, "-m", "service"]
    if config == OLD:
        return [sys.executable, "-c", WITH_TORCH, "service.main:app", *UVICORN_ARGS, "--port", str(port)]
    return [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", "bench", *UVICORN_ARGS, "--port", str(port)]


def cold_start(models: Path, config: str) -> Sample:
    """Spawn one server, time it to /ready, send 50 predictions and one GET /monitoring, read its memory, stop it."""
    port = free_port()
    env = {
        **os.environ,
        "MODEL_DIR": str(models),
        "PYTHONPATH": str(REPO_ROOT),
        "MONITOR": "0" if config == UNMONITORED else "1",
        "HOST": HOST,
        "PORT": str(port),
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        command(config, port), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while not ready(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}: {proc.communicate()[1]!r}")
            if time.perf_counter() - start > 60:
                raise RuntimeError("the server was not ready within 60 s")
            time.sleep(0.005)
        ready_s = time.perf_counter() - start
        cpu_s = cpu_seconds(proc.pid)
        if config != FLOOR:
            for _ in range(50):
                expect_ok(port, "POST", "/predict", PREDICT_BODY)
            expect_ok(port, "POST", "/predict", WINDOW_BODY)
            expect_ok(port, "GET", "/monitoring")  # with MONITOR=1: a full window, every drift test computed
        rss, pss = memory_mib(proc.pid)
        return Sample(ready_s, cpu_s, rss, pss)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def describe(name: str, samples: list[Sample]) -> str:
    """One table row: medians and ranges."""
    ready_s = [s.ready_s for s in samples]
    cpu_s = [s.cpu_s for s in samples]
    rss = [s.rss_mib for s in samples]
    pss = [s.pss_mib for s in samples]
    return (
        f"{name:<30} {statistics.median(ready_s):>6.2f} s ({min(ready_s):.2f}-{max(ready_s):.2f})"
        f" {statistics.median(cpu_s):>6.2f} s"
        f" {statistics.median(rss):>7.1f} MiB ({min(rss):.1f}-{max(rss):.1f}) {statistics.median(pss):>7.1f} MiB"
    )


def main() -> int:
    """Measure both footprints, print a table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, help="model directory (default: train a quick pair)")
    parser.add_argument("--repeats", type=int, default=5, help="cold starts per configuration (default: 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        models = models_or_quick_pair(args.models, Path(work))
        results: dict[str, list[Sample]] = {config: [] for config in (SHIPPED, UNMONITORED, OLD, FLOOR)}
        # Interleaved, so a burst of load on a shared machine hits every configuration alike.
        for _ in range(args.repeats):
            for config, samples in results.items():
                samples.append(cold_start(models, config))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'one worker':<30} {'to /ready (median, range)':<26} {'CPU':<8} {'RSS (median, range)':<27} PSS")
    for name, samples in results.items():
        print(describe(name, samples))
    lean = results[UNMONITORED]
    ready_ok = statistics.median(s.ready_s for s in results[SHIPPED]) <= TARGET_READY_S
    rss_ok = statistics.median(s.rss_mib for s in lean) * 1.048576 <= TARGET_RSS_MB  # MiB -> MB
    monitored_ok = statistics.median(s.rss_mib for s in results[SHIPPED]) * 1.048576 <= TARGET_RSS_MONITOR_MB
    print(f"cold start (shipped) <= {TARGET_READY_S} s: {'PASS' if ready_ok else 'MISS'}")
    print(f"RSS <= {TARGET_RSS_MB:.0f} MB per worker: {'PASS' if rss_ok else 'MISS'}")
    print(f"RSS <= {TARGET_RSS_MONITOR_MB:.0f} MB per worker with monitoring on: {'PASS' if monitored_ok else 'MISS'}")
    return 1 if args.check and not (ready_ok and rss_ok and monitored_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
