"""Benchmark of input monitoring: single-passenger throughput with it on and off, GET /monitoring, memory.

Usage:
    .venv/bin/python bench/bench_monitoring.py [--models DIR] [--seconds 40] [--pairs 6] [--slices 3]
                                               [--client auto|wrk|httpx] [--check]

A shared host's CPU speed can drift by tens of per cent from one second to the next, and differently on each CPU
(bench/steadiness.py, printed first), so two servers measured one after the other differ by more than monitoring
could cost. This script takes that noise out in two ways, on the shipped server (`python -m service`, one
worker, access log on, 127.0.0.1, a free port):

1. **One server, monitoring switched** (the target's figure). One MONITOR=1 server (bench/bench_app.py: the served
   app plus `POST /_monitoring_ab`) under single-passenger POST /predict (both models) at concurrency 16 for
   --seconds, while the server itself turns its monitor off and on every 50 ms and counts the passengers answered
   in each block. Same process, heap and connections; neighbouring blocks see the same machine speed. The cost
   of each window of 20 blocks (10 on, 10 off) is 1 - on rate / off rate; the figure is their mean with a 95 %
   t-interval. Then it fills the window (1,000 passengers) and times 200 sequential GET /monitoring.
2. **Separate servers, loaded at the same time** (what MONITOR=1 vs MONITOR=0 changes as a whole, imports and
   all). --pairs pairs of a MONITOR=1 and a MONITOR=0 server, and as many A/A pairs of two MONITOR=0 servers,
   started fresh in turn; both servers of a pair share one CPU and are loaded at once (--slices slices of 2 s),
   so the machine's speed is the same for both. A pair's cost is 1 - on's requests / off's. How far the A/A
   pairs differ (two identical servers, each process with its own start and memory layout) is this comparison's
   resolution.

Where the platform allows (Linux, 2 or more CPUs) the servers run on the last CPU and the load generator (wrk,
one thread per server; or the async Python client of bench_service.py) on the others. Without --models a quick
pair of checkpoints is trained first (5 epochs, into a temp dir). Last, in this process, what monitoring adds to
one request (Monitor.observe of one passenger) and what a report costs (Monitor.report on a full window).

Targets (issue 13): monitoring costs at most 5 % of the throughput (met when the 95 % interval of part 1 lies
below 5 %); GET /monitoring with a full window answers in under 20 ms (median; p99 printed too). The worker's
memory with monitoring on and off: bench/bench_footprint.py. --check exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from bench_app import AB_PATH
from bench_service import Load, at_once
from scipy import stats
from server import HOST, models_or_quick_pair, serving
from steadiness import measure as steadiness

CONCURRENCY: Final[int] = 16
TARGET_COST: Final[float] = 0.05
TARGET_GET_MS: Final[float] = 20.0
WINDOW: Final[int] = 1000
GETS: Final[int] = 200
OBSERVES: Final[int] = 20_000
REPORTS: Final[int] = 50
BLOCK_S: Final[float] = 0.05
BLOCKS_PER_WINDOW: Final[int] = 20
SLICE_S: Final[float] = 2.0
WARMUP_S: Final[float] = 2.0
SETTLE_S: Final[float] = 1.0  # load runs this long before the switching starts, and after it ends
STEADINESS_S: Final[float] = 5.0


class Cpus:
    """Which CPUs the servers and the load generator run on: the last one for servers, the rest for clients."""

    def __init__(self) -> None:
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.pinned = len(available) >= 2
        self.server = {available[-1]} if self.pinned else set()
        self.clients = set(available[:-1]) if self.pinned else set()
        if self.pinned:
            os.sched_setaffinity(0, self.clients)  # this process and the load generators it starts

    def place(self, pid: int) -> None:
        """Move a server onto the servers' CPU."""
        if self.pinned:
            os.sched_setaffinity(pid, self.server)

    def describe(self) -> str:
        """One line for the report."""
        if not self.pinned:
            return "servers and load generator not pinned (fewer than 2 CPUs, or no sched_setaffinity)"
        return f"servers on CPU {sorted(self.server)}, load generator on CPU {sorted(self.clients)}"


@contextlib.contextmanager
def server(app: str, monitor: bool, models: Path, log: Path, cpus: Cpus) -> Iterator[int]:
    """A shipped server with MONITOR on or off, placed on the servers' CPU; yields its port."""
    os.environ["MONITOR"] = "1" if monitor else "0"
    with serving(app, models, log) as (port, pid):
        cpus.place(pid)
        yield port


def window_body() -> bytes:
    """1,000 varied passengers: a full default window."""
    passengers = [
        {"pclass": 1 + i % 3, "fare": 5.0 + (i * 7.31) % 200, "age": None if i % 5 == 0 else 1.0 + (i * 3.7) % 70}
        for i in range(WINDOW)
    ]
    return json.dumps({"passengers": passengers}).encode()


def post(port: int, path: str, body: bytes, timeout: float) -> bytes:
    """POST on a fresh connection; the answer's body, or RuntimeError naming the status."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path} answered {response.status}: {data[:300]!r}")
        return data
    finally:
        conn.close()


def time_monitoring(port: int) -> list[float]:
    """Fill the window, then the milliseconds of GETS sequential GET /monitoring on one connection."""
    post(port, "/predict", window_body(), 30)
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
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


def switched(port: int, client: str, seconds: float, work: Path) -> tuple[list[tuple[bool, float, float]], Load]:
    """Part 1: load the server for `seconds` while it switches its monitor; its blocks and the whole load run."""
    at_once(client, [port], "/predict", CONCURRENCY, WARMUP_S, work)
    load: list[Load] = []
    runner = threading.Thread(
        target=lambda: load.extend(at_once(client, [port], "/predict", CONCURRENCY, seconds + 2 * SETTLE_S, work))
    )
    runner.start()
    try:
        time.sleep(SETTLE_S)
        answer = post(port, f"{AB_PATH}?seconds={seconds}&block={BLOCK_S}", b"", seconds + 60)
    finally:
        runner.join()
    if not load or load[0].errors:
        raise RuntimeError(f"the load generator failed ({load[0].errors if load else 'no result'}) while switching")
    blocks = [(bool(on), float(spent), float(passengers)) for on, spent, passengers in json.loads(answer)["blocks"]]
    return blocks, load[0]


def window_costs(blocks: list[tuple[bool, float, float]]) -> list[float]:
    """1 - on rate / off rate in each window of BLOCKS_PER_WINDOW consecutive blocks (half of them on)."""
    costs = []
    for start in range(0, len(blocks) - BLOCKS_PER_WINDOW + 1, BLOCKS_PER_WINDOW):
        served = {True: 0.0, False: 0.0}
        spent = {True: 0.0, False: 0.0}
        for on, seconds, passengers in blocks[start : start + BLOCKS_PER_WINDOW]:
            served[on] += passengers
            spent[on] += seconds
        costs.append(1 - (served[True] / spent[True]) / (served[False] / spent[False]))
    return costs


def pair(kinds: tuple[bool, bool], models: Path, client: str, slices: int, work: Path, cpus: Cpus) -> list[int]:
    """Part 2: two fresh servers (MONITOR per `kinds`) loaded at the same time; the requests each one served."""
    tag = "".join("1" if on else "0" for on in kinds)
    with contextlib.ExitStack() as stack:
        ports = [
            stack.enter_context(server("service.main:app", on, models, work / f"pair-{tag}-{i}.log", cpus))
            for i, on in enumerate(kinds)
        ]
        at_once(client, ports, "/predict", CONCURRENCY, WARMUP_S, work)
        served = [0, 0]
        for _ in range(slices):
            loads = at_once(client, ports, "/predict", CONCURRENCY, SLICE_S, work)
            if any(load.errors for load in loads):
                raise RuntimeError(f"failed requests in a pair with MONITOR={tag}")
            served = [total + load.requests for total, load in zip(served, loads, strict=True)]
    return served


def in_process(models: Path) -> tuple[float, float]:
    """Microseconds of Monitor.observe for one passenger, milliseconds of Monitor.report on a full window."""
    import numpy as np

    from service.monitoring.monitor import Monitor
    from service.pair import ServedPair

    monitor = Monitor(ServedPair.load(models), capacity=WINDOW, min_size=100, alpha=0.05)
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


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t-interval."""
    mean = statistics.mean(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


def pct(values: list[float]) -> str:
    """Signed percentages, one decimal."""
    return ", ".join(f"{v * 100:+.1f}" for v in values) + " %"


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="model directory (default: train a quick pair)")
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds of switching in part 1")
    parser.add_argument("--pairs", type=int, default=6, help="on/off pairs (and as many A/A pairs) in part 2")
    parser.add_argument("--slices", type=int, default=3, help=f"{SLICE_S:g}-second slices of load per pair")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto", help="load generator")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if args.seconds < BLOCK_S * BLOCKS_PER_WINDOW * 3 or args.pairs < 2 or args.slices < 1:
        parser.error("need --seconds >= 3, --pairs >= 2, --slices >= 1 (for an interval)")
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(steadiness(STEADINESS_S).describe(), flush=True)  # before this process is pinned: every CPU
    cpus = Cpus()
    print(f"load generator: {client}, concurrency {CONCURRENCY}; {cpus.describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = models_or_quick_pair(args.models, work)
        with server("bench_app:app", True, models, work / "switched.log", cpus) as port:
            blocks, load = switched(port, client, args.seconds, work)
            gets = time_monitoring(port)
        costs: dict[str, list[float]] = {"on/off": [], "A/A": []}
        for i in range(args.pairs):
            # Which server starts first alternates, so whatever favours the first (or second) hits both.
            # The A/A pair's first slot holds a MONITOR=0 server where the on/off pair's holds the MONITOR=1 one.
            for name, kinds in (("on/off", (True, False)), ("A/A", (False, False))):
                served = pair(kinds if i % 2 == 0 else kinds[::-1], models, client, args.slices, work, cpus)
                slot, other = served if i % 2 == 0 else served[::-1]
                costs[name].append(1 - slot / other)
                what = "cost" if name == "on/off" else "difference"
                print(f"pair {i + 1} {name}: {slot:,} and {other:,} requests, {what} {costs[name][-1] * 100:+.1f} %")
        observe_us, report_ms = in_process(models)
    window = window_costs(blocks)
    cost, low, high = interval(window)
    rate = {
        on: sum(b[2] for b in blocks if b[0] is on) / sum(b[1] for b in blocks if b[0] is on) for on in (True, False)
    }
    ab, ab_low, ab_high = interval(costs["on/off"])
    aa, aa_low, aa_high = interval(costs["A/A"])
    extra_us = (1 / rate[True] - 1 / rate[False]) * 1e6  # one passenger a request
    get_p50, get_p99 = statistics.median(gets), statistics.quantiles(gets, n=100)[98]
    print()
    print("| what | figure | target |")
    print("|---|---|---|")
    print(
        f"| 1. one server, monitoring switched every {BLOCK_S * 1e3:.0f} ms for {args.seconds:g} s "
        f"({len(blocks)} blocks, {len(window)} windows of {BLOCKS_PER_WINDOW}; {load.rps:,.0f} requests/s overall, "
        f"on {rate[True]:,.0f} / off {rate[False]:,.0f} passengers/s) | cost **{cost * 100:+.2f} %** "
        f"(95 % interval {low * 100:+.2f} to {high * 100:+.2f} %; windows' sd {statistics.stdev(window) * 100:.1f} %; "
        f"{extra_us:+.0f} us a request) "
        f"| <= {TARGET_COST * 100:.0f} %: {verdict(high <= TARGET_COST)} |"
    )
    print(
        f"| 2. separate servers at once, {args.pairs} on/off pairs ({args.slices} x {SLICE_S:g} s each) "
        f"| cost {ab * 100:+.1f} % (95 % interval {ab_low * 100:+.1f} to {ab_high * 100:+.1f} %; pairs "
        f"{pct(costs['on/off'])}) | |"
    )
    print(
        f"| 2. A/A control, {args.pairs} pairs of two MONITOR=0 servers | difference {aa * 100:+.1f} % (95 % interval "
        f"{aa_low * 100:+.1f} to {aa_high * 100:+.1f} %; pairs {pct(costs['A/A'])}); "
        f"sd {statistics.stdev(costs['A/A']) * 100:.1f} % against the on/off pairs' "
        f"{statistics.stdev(costs['on/off']) * 100:.1f} % | |"
    )
    print(
        f"| GET /monitoring, full window of {WINDOW} ({len(gets)} requests) | p50 {get_p50:.2f} ms, "
        f"p99 {get_p99:.2f} ms | < {TARGET_GET_MS:.0f} ms: {verdict(get_p50 < TARGET_GET_MS)} |"
    )
    print(
        f"in process: Monitor.observe of one passenger {observe_us:.1f} us; Monitor.report on a full window "
        f"{report_ms:.1f} ms (median of {REPORTS})"
    )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    ok = high <= TARGET_COST and get_p50 < TARGET_GET_MS
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
