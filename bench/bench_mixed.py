"""Benchmark: do big batches stall the service? Single-passenger latency and throughput alone, then while
10,000-row JSON and CSV batches arrive at concurrency 8, in one run against the shipped server, one worker.

Usage:
    .venv/bin/python bench/bench_mixed.py [--models DIR] [--duration 10] [--warmup 2] [--concurrency 1]
                                          [--batch-clients 8] [--batch-size 10000] [--client auto|wrk|httpx]
                                          [--check]

Starts `python -m service` (one worker, the shipped settings: access log and monitoring on; loopback, a free port;
without --models a quick pair of checkpoints is trained first). Phase 1 times single-passenger POST /predict alone
(wrk, `--concurrency` connections). Phase 2 repeats it while `--batch-clients` closed-loop clients (threads of this
process, one kept-alive connection each) post 10,000-passenger batches, half of them as JSON, half as Kaggle-style
CSV. Prints both, the batches' own latency and count, and PASS/MISS for the targets: single-passenger p99 under 50
ms and throughput at least a quarter of alone, while the batches arrive. --check exits 1 when one is missed."""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

from bench_service import Load, batch_body, measure, verdict, wrk_version
from server import HOST, models_or_quick_pair, serving

TARGET_P99_MS: Final[float] = 50.0
TARGET_RATIO: Final[float] = 0.25


def csv_body(size: int) -> bytes:
    """The same passengers as `batch_body(size)`, as a Kaggle-style CSV with PassengerIds."""
    passengers = json.loads(batch_body(size))["passengers"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["PassengerId", "Pclass", "Fare", "Age"])
    for i, p in enumerate(passengers):
        writer.writerow([892 + i, p["pclass"], p["fare"], "" if p["age"] is None else p["age"]])
    return out.getvalue().encode()


class BatchLoad:
    """Closed-loop clients posting big batches until stopped; each alternates JSON and CSV bodies."""

    def __init__(self, port: int, clients: int, size: int) -> None:
        self.bodies = [(batch_body(size), "application/json"), (csv_body(size), "text/csv")]
        self.port, self.size = port, size
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(clients)]

    def client(self, offset: int) -> None:
        """One client: post batches on one connection until told to stop."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        n = offset
        try:
            while not self.stop.is_set():
                body, kind = self.bodies[n % 2]
                n += 1
                start = time.perf_counter()
                conn.request("POST", "/predict", body=body, headers={"Content-Type": kind})
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    self.failures.append(f"{response.status}: {answer[:200]!r}")
                    continue
                self.latencies_ms.append((time.perf_counter() - start) * 1e3)
        except OSError as exc:
            self.failures.append(repr(exc))
        finally:
            conn.close()

    def __enter__(self) -> BatchLoad:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # let every client have a batch in flight before timing starts
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def main() -> int:
    """Parse options, start the server, run both phases, print the figures and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="checkpoint directory (default: train a 5-epoch pair)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed phase (default: 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each phase")
    parser.add_argument("--concurrency", type=int, default=1, help="single-passenger connections (default: 1)")
    parser.add_argument("--batch-clients", type=int, default=8, help="concurrent batch clients (default: 8)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="passengers per batch (default: 10000)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto", help="single-passenger load")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    client = args.client if args.client != "auto" else ("wrk" if wrk else "httpx")
    if client == "wrk" and wrk is None:
        parser.error("wrk is not installed (Debian: apt-get install -y wrk); use --client httpx")

    generator = f"{wrk_version(wrk)}, 1 thread" if client == "wrk" and wrk else "async httpx client"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; single passengers: {generator}, "
          f"{args.concurrency} connection(s); batches: {args.batch_clients} clients x {args.batch_size:,} rows, "
          "JSON and CSV alternating; one uvicorn worker", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_mixed_") as tmp:
        work = Path(tmp)
        model_dir = models_or_quick_pair(args.models, work)
        with serving("service.main:app", model_dir, work / "server.log") as (port, _):
            alone = measure(client, port, "/predict", args.concurrency, args.warmup, args.duration, work)
            with BatchLoad(port, args.batch_clients, args.batch_size) as batches:
                mixed = measure(client, port, "/predict", args.concurrency, args.warmup, args.duration, work)
                done = len(batches.latencies_ms)
            print(f"load average after: {os.getloadavg()[0]:.2f}\n")

    header = f"{'single passengers':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}"
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, Load]] = [("alone", alone), (f"with {args.batch_clients} batch clients", mixed)]
    for label, load in rows:
        print(f"{label:<34}{load.rps:>9.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}{load.requests:>10}{load.errors:>8}")
    if batches.latencies_ms:
        lat = sorted(batches.latencies_ms)
        print(f"\nbatches answered: {done} ({done * args.batch_size:,} passengers), median "
              f"{statistics.median(lat):.0f} ms, max {lat[-1]:.0f} ms per batch request")  # fmt: skip
    ratio = mixed.rps / alone.rps if alone.rps else 0.0
    checks = [
        (f"single-passenger p99 during batches: {mixed.p99_ms:.1f} ms (alone {alone.p99_ms:.2f} ms; "
         f"target < {TARGET_P99_MS:g} ms)", mixed.p99_ms < TARGET_P99_MS),
        (f"single-passenger throughput during batches: {ratio:.0%} of alone ({mixed.rps:.0f} / {alone.rps:.0f} "
         f"req/s; target >= {TARGET_RATIO:.0%})", ratio >= TARGET_RATIO),
        (f"failed requests: {alone.errors + mixed.errors} single, {len(batches.failures)} batch",
         alone.errors + mixed.errors + len(batches.failures) == 0 and done > 0),
    ]  # fmt: skip
    for failure in batches.failures[:3]:
        print(f"batch failure: {failure}")
    for text, ok in checks:
        print(f"{verdict(ok)}  {text}")
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
