"""Footprint of one API worker: whole-process cold start to /ready, and resident memory, without and with torch.

Usage:
    .venv/bin/python bench/bench_footprint.py [--models DIR] [--repeats 5] [--check]

Starts `uvicorn service.main:app` (one worker, 127.0.0.1, a free port) --repeats times and measures, from the
moment the process is spawned, the time until GET /ready answers 200 (polled every 5 ms) and the CPU time the
process used by then (a busy machine inflates it far less than wall time); then, after 50 single-passenger
POST /predict, the process's RSS and PSS (/proc/PID/smaps_rollup). For comparison it does the same with torch
imported first (`python -c "import torch; uvicorn.main()"`): what every worker paid before the service read the
torch-free served form. Without --models a quick pair is trained first (5 epochs, into a temp dir).

Each configuration runs with input monitoring off (MONITOR=0) and the served form once more with it on
(MONITOR=1, after one GET /monitoring: scipy loaded and a report computed).

Targets (issue 11): cold start <= 0.7 s and <= 80 MB per worker with monitoring off, <= 120 MB with it on.
--check exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import http.client
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
UVICORN_ARGS: Final[list[str]] = ["service.main:app", "--host", HOST, "--no-access-log", "--log-level", "warning"]
# The old footprint: the same server in a process that has imported torch (as the service did until the served form).
MONITORED: Final[str] = "served form, MONITOR=1"
WITH_TORCH: Final[str] = "import sys, torch; from uvicorn.main import main; sys.argv[0] = 'uvicorn'; main()"


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


def cold_start(models: Path, with_torch: bool, monitor: bool = False) -> Sample:
    """Spawn one server, time it to /ready, send 50 predictions (and one GET /monitoring), read its memory, stop it."""
    port = free_port()
    args = [*UVICORN_ARGS, "--port", str(port)]
    command = [sys.executable, "-c", WITH_TORCH, *args] if with_torch else [sys.executable, "-m", "uvicorn", *args]
    env = {**os.environ, "MODEL_DIR": str(models), "PYTHONPATH": str(REPO_ROOT), "MONITOR": str(int(monitor))}
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not ready(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}: {proc.communicate()[1]!r}")
            if time.perf_counter() - start > 60:
                raise RuntimeError("the server was not ready within 60 s")
            time.sleep(0.005)
        ready_s = time.perf_counter() - start
        cpu_s = cpu_seconds(proc.pid)
        for _ in range(50):
            expect_ok(port, "POST", "/predict", PREDICT_BODY)
        if monitor:
            # The first report may wait for scipy.stats to finish loading.
            expect_ok(port, "GET", "/monitoring", timeout=60)
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
        f"{name:<26} {statistics.median(ready_s):>6.2f} s ({min(ready_s):.2f}-{max(ready_s):.2f})"
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
        results: dict[str, list[Sample]] = {
            "served form (no torch)": [],
            "with torch imported (old)": [],
            MONITORED: [],
        }
        # Interleaved, so a burst of load on a shared machine hits every configuration alike.
        for _ in range(args.repeats):
            results["served form (no torch)"].append(cold_start(models, with_torch=False))
            results["with torch imported (old)"].append(cold_start(models, with_torch=True))
            results[MONITORED].append(cold_start(models, with_torch=False, monitor=True))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'one worker':<26} {'to /ready (median, range)':<26} {'CPU':<8} {'RSS (median, range)':<27} PSS")
    for name, samples in results.items():
        print(describe(name, samples))
    lean = results["served form (no torch)"]
    ready_ok = statistics.median(s.ready_s for s in lean) <= TARGET_READY_S
    rss_ok = statistics.median(s.rss_mib for s in lean) * 1.048576 <= TARGET_RSS_MB  # MiB -> MB
    monitored_ok = statistics.median(s.rss_mib for s in results[MONITORED]) * 1.048576 <= TARGET_RSS_MONITOR_MB
    print(f"cold start <= {TARGET_READY_S} s: {'PASS' if ready_ok else 'MISS'}")
    print(f"RSS <= {TARGET_RSS_MB:.0f} MB per worker: {'PASS' if rss_ok else 'MISS'}")
    print(f"RSS <= {TARGET_RSS_MONITOR_MB:.0f} MB per worker with monitoring on: {'PASS' if monitored_ok else 'MISS'}")
    return 1 if args.check and not (ready_ok and rss_ok and monitored_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
