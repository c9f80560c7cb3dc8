"""Benchmark of input monitoring: single-passenger throughput with it on and off, GET /monitoring, memory.

Usage:
    .venv/bin/python bench/bench_monitoring.py [--models DIR] [--duration 8] [--warmup 2] [--rounds 2]
                                               [--client auto|wrk|httpx] [--check]

In one run, alternating (on, off, off, on, on, off, ...: --rounds each, so a change of the machine's load and any
favour of a pair's first server hit both), starts the shipped server (`python -m service`, one worker) on 127.0.0.1
at a free port with MONITOR=1 or MONITOR=0 and measures single-passenger POST /predict (both models) at concurrency
16 (wrk, one thread; or the async Python client of bench_service.py). With monitoring on it then fills the window
(1,000 passengers) and times 200 sequential GET /monitoring on one keep-alive connection. Without --models a quick
pair of checkpoints is trained first (5 epochs, into a temp dir). Then, in this process, what monitoring adds to one
request (Monitor.observe of one passenger) and what a report costs (Monitor.report on a full window), free of the
noise of comparing two server processes. Last, an A/A control in this process: three apps (monitoring off, on, off)
called directly through ASGI in ABBA rounds; how far the two identical off apps differ is the resolution against
which the on app's cost can be read.

Targets (issue 13): monitoring costs at most 5 % of the throughput (the median over the rounds of each on/off pair's
cost); GET /monitoring with a full window answers in under 20 ms (median; p99 printed too). The worker's memory with
monitoring on and off: bench/bench_footprint.py.
--check exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from bench_service import measure
from server import HOST, models_or_quick_pair, serving

CONCURRENCY: Final[int] = 16
TARGET_COST: Final[float] = 0.05
TARGET_GET_MS: Final[float] = 20.0
WINDOW: Final[int] = 1000
GETS: Final[int] = 200
OBSERVES: Final[int] = 20_000
APP_CONTROL: Final[tuple[tuple[str, bool], ...]] = (("off A", False), ("on", True), ("off B", False))
APP_ROUNDS: Final[int] = 8
APP_REQUESTS: Final[int] = 2_000
REPORTS: Final[int] = 50


def window_body() -> bytes:
    """1,000 varied passengers: a full default window."""
    passengers = [
        {"pclass": 1 + i % 3, "fare": 5.0 + (i * 7.31) % 200, "age": None if i % 5 == 0 else 1.0 + (i * 3.7) % 70}
        for i in range(WINDOW)
    ]
    return json.dumps({"passengers": passengers}).encode()


def time_monitoring(port: int) -> list[float]:
    """Fill the window, then the milliseconds of GETS sequential GET /monitoring on one connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("POST", "/predict", body=window_body(), headers={"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /predict answered {response.status}")
        times = []
        for _ in range(GETS):
            start = time.perf_counter()
            conn.request("GET", "/monitoring")
            response = conn.getresponse()
            report = json.loads(response.read())
            times.append((time.perf_counter() - start) * 1e3)
            if response.status != 200 or report["window"]["size"] != WINDOW or report["drift"] is None:
                raise RuntimeError(f"GET /monitoring answered {response.status}: {str(report)[:300]}")
        return times
    finally:
        conn.close()


def in_process(models: Path) -> tuple[float, float]:
    """Microseconds of Monitor.observe for one passenger, milliseconds of Monitor.report on a full window.

    Timed in this process, on the served registry of `models`: what monitoring adds to a request and to a
    report, without the noise of comparing two server processes.
    """
    import numpy as np

    from service.monitoring.monitor import Monitor
    from service.registry import Registry

    monitor = Monitor(Registry.load(models), capacity=WINDOW, min_size=100, alpha=0.05)
    one = np.array([[3.0, 7.25, 22.0]])
    start = time.perf_counter()
    for _ in range(OBSERVES):
        monitor.observe(one)
    observe_us = (time.perf_counter() - start) / OBSERVES * 1e6
    passengers = json.loads(window_body())["passengers"]
    rows = np.array([[p["pclass"], p["fare"], np.nan if p["age"] is None else p["age"]] for p in passengers])
    monitor.observe(rows)
    times = []
    for _ in range(REPORTS):
        start = time.perf_counter()
        report = monitor.report()
        times.append((time.perf_counter() - start) * 1e3)
    if report.drift is None:
        raise RuntimeError("the in-process report ran no test")
    return observe_us, statistics.median(times)


async def asgi_requests(app: Any, n: int) -> float:
    """Microseconds per single-passenger POST /predict, calling the ASGI app directly (no sockets)."""
    body = b'{"pclass":3,"fare":7.25,"age":22}'
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST"}
    scope |= {"scheme": "http"}
    scope |= {"path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "", "headers": headers}
    scope |= {"client": (HOST, 1), "server": (HOST, 8000)}
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope, state={}), receive, send)
    if statuses != {200}:
        raise RuntimeError(f"POST /predict answered {statuses}")
    return (time.perf_counter() - start) / n * 1e6


async def app_control(models: Path) -> dict[str, float]:
    """Median us per request of three apps in this process, off, on, off, in ABBA rounds: the two off apps are
    the A/A control, how far two identical apps differ, against which the on app's cost can be read."""
    from service.config import Settings
    from service.main import create_app

    apps, stack = {}, contextlib.AsyncExitStack()
    async with stack:
        for name, on in APP_CONTROL:
            app = create_app(Settings(model_dir=models, monitor=on, access_log=False))
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[name] = app
            await asgi_requests(app, 300)  # warm
        times: dict[str, list[float]] = {name: [] for name in apps}
        for round_no in range(APP_ROUNDS):
            for name in list(apps) if round_no % 2 == 0 else list(apps)[::-1]:
                times[name].append(await asgi_requests(apps[name], APP_REQUESTS))
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="model directory (default: train a quick pair)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per timed load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each timed run")
    parser.add_argument("--rounds", type=int, default=2, help="servers started per mode, alternating on and off")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto", help="load generator")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"load generator: {client}; concurrency {CONCURRENCY}, {args.duration:g} s per run, {args.rounds} rounds")
    rps: dict[bool, list[float]] = {True: [], False: []}
    p99: dict[bool, list[float]] = {True: [], False: []}
    gets: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = models_or_quick_pair(args.models, work)
        for round_no in range(args.rounds):
            # ABBA: on first in even rounds, off first in odd ones, so whatever favours the first (or second)
            # server of a pair hits both modes alike.
            for on in (True, False) if round_no % 2 == 0 else (False, True):
                os.environ["MONITOR"] = "1" if on else "0"
                with serving("service.main:app", models, work / f"server-{on}-{round_no}.log") as (port, _pid):
                    load = measure(client, port, "/predict", CONCURRENCY, args.warmup, args.duration, work)
                    if load.errors:
                        raise RuntimeError(f"{load.errors} failed requests with MONITOR={int(on)}")
                    rps[on].append(load.rps)
                    p99[on].append(load.p99_ms)
                    if on:
                        gets += time_monitoring(port)
                print(f"round {round_no + 1}, MONITOR={int(on)}: {load.rps:,.0f} requests/s, p99 {load.p99_ms:.2f} ms")
        observe_us, report_ms = in_process(models)
        control = asyncio.run(app_control(models))
    on_rps, off_rps = statistics.median(rps[True]), statistics.median(rps[False])
    # Each round is a pair (on, then off) started back to back: the median of the pairs' costs is less moved
    # by the machine's drift than the ratio of the two medians.
    paired = [1 - on / off for on, off in zip(rps[True], rps[False], strict=True)]
    cost = statistics.median(paired)
    get_p50 = statistics.median(gets)
    get_p99 = statistics.quantiles(gets, n=100)[98]
    print()
    print("| what | monitoring on | monitoring off | target |")
    print("|---|---|---|---|")
    print(
        f"| single-passenger POST /predict, concurrency {CONCURRENCY} (median of {args.rounds}) | {on_rps:,.0f} req/s, "
        f"p99 {statistics.median(p99[True]):.2f} ms | {off_rps:,.0f} req/s, p99 {statistics.median(p99[False]):.2f} ms "
        f"| cost {cost * 100:+.1f} % (median of the rounds' pairs; they range {min(paired) * 100:+.1f} % to "
        f"{max(paired) * 100:+.1f} %; <= {TARGET_COST * 100:.0f} %): {verdict(cost <= TARGET_COST)} |"
    )
    print(
        f"| GET /monitoring, full window of {WINDOW} ({len(gets)} requests) "
        f"| p50 {get_p50:.2f} ms, p99 {get_p99:.2f} ms"
        f" | | < {TARGET_GET_MS:.0f} ms: {verdict(get_p50 < TARGET_GET_MS)} |"
    )
    print(
        f"in process: Monitor.observe of one passenger {observe_us:.1f} us; Monitor.report on a full window "
        f"{report_ms:.1f} ms (median of {REPORTS})"
    )
    off = (control["off A"] + control["off B"]) / 2
    print(
        f"in process, the ASGI app called directly ({APP_ROUNDS} ABBA rounds of {APP_REQUESTS} requests, access log "
        f"off): on {control['on']:.0f} us/request, off {control['off A']:.0f} and {control['off B']:.0f} "
        f"(cost {1 - off / control['on']:+.1%} against the mean of the two; the two identical off apps differ by "
        f"{abs(control['off A'] - control['off B']) / off:.1%}: the resolution of this comparison)"
    )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    ok = cost <= TARGET_COST and get_p50 < TARGET_GET_MS
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
