"""The data plane against what a user could run instead: the shipped server, a hand-written FastAPI app, bare ASGI.

Usage:
    .venv/bin/python bench/bench_dataplane.py [--models DIR] [--rounds 2] [--duration 8] [--warmup 2]
                                              [--batches 10] [--cold 5] [--check]

In one run on one machine, each server one worker on 127.0.0.1 at a free port, loaded by wrk (one thread) with the
single passenger `{"pclass": 3, "fare": 7.25, "age": 22}` at concurrency 16, in interleaved rounds so that drift in
the machine's speed hits all three alike:

- shipped: `python -m service`, every setting its default (access log on, written to a file; monitoring and
  metrics on): POST /predict (both models), and POST /v2/models/batchnorm/infer with the same passenger;
- hand-written: bench/handwritten_app.py, twenty lines of FastAPI (pydantic model, both torch models inline, no
  access log, no metrics) under uvicorn;
- bare: bench/bare_asgi.py, an ASGI app that parses the JSON and answers a constant, under uvicorn (the floor of a
  Python HTTP stack).

Then, on the shipped server, the end-to-end time of a 10,000-passenger /predict batch (median of --batches), and
the cold start of `python -m service` (spawn to GET /ready 200; median of --cold).

Targets (issue 20): shipped /predict >= 2.5x the hand-written app and >= 30 % of the bare app, p99 <= 5 ms; V2
infer within 20 % of /predict; the batch <= 100 ms; cold start <= 0.7 s. --check exits 1 on a miss. Without
--models a quick pair is trained first (5 epochs, into a temp dir).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from bench_footprint import SHIPPED, cold_start
from bench_service import WRK_SCRIPT, Load, run_wrk, time_batches, verdict
from server import BENCH_DIR, HOST, READY_TIMEOUT_S, REPO_ROOT, free_port, models_or_quick_pair, serving

SINGLE: Final[bytes] = b'{"pclass":3,"fare":7.25,"age":22}'
V2_SINGLE: Final[bytes] = json.dumps(
    {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 7.25, 22]}]},
    separators=(",", ":"),
).encode()
CONCURRENCY: Final[int] = 16
TARGET_VS_HANDWRITTEN: Final[float] = 2.5
TARGET_VS_BARE: Final[float] = 0.30
TARGET_P99_MS: Final[float] = 5.0
TARGET_V2_GAP: Final[float] = 0.20
TARGET_BATCH_MS: Final[float] = 100.0
TARGET_COLD_S: Final[float] = 0.7
SHIPPED_PREDICT, SHIPPED_V2, HANDWRITTEN, BARE = "shipped /predict", "shipped V2 infer", "hand-written", "bare ASGI"


@contextmanager
def uvicorn_app(app: str, model_dir: Path, log_path: Path) -> Iterator[int]:
    """A bench/ app under `uvicorn --http httptools` (one worker, uvicorn's request log below its level); its port."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--http", "httptools"]
    cmd += ["--log-level", "warning"]  # what a twenty-line app runs with: no per-request line
    env = {**os.environ, "MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join((str(BENCH_DIR), str(REPO_ROOT)))}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def answers(port: int) -> bool:
    """Whether POST /predict with the single passenger answers 200 (the baselines have no /ready)."""
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("POST", "/predict", body=SINGLE, headers={"Content-Type": "application/json"})
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def load(wrk: str, work: Path, port: int, path: str, body: bytes, warmup: float, seconds: float) -> Load:
    """Warm up, then time one endpoint at the target concurrency."""
    script = work / f"post-{len(body)}.lua"
    script.write_text(WRK_SCRIPT.replace("{body}", body.decode()))
    url = f"http://{HOST}:{port}{path}"
    if warmup > 0:
        run_wrk(wrk, script, url, CONCURRENCY, warmup)
    return run_wrk(wrk, script, url, CONCURRENCY, seconds)


def main() -> int:
    """Start the three servers, load them in rounds, time the batch and the cold start, print figures and verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="checkpoint directory (default: train a 5-epoch pair)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the servers (default: 2)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per timed run (default: 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default: 2)")
    parser.add_argument("--batches", type=int, default=10, help="timed 10,000-passenger requests (default: 10)")
    parser.add_argument("--cold", type=int, default=5, help="cold starts timed (default: 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk is not installed (Debian: apt-get install -y wrk)")

    import fastapi
    import uvicorn

    print(
        f"python {platform.python_version()}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; wrk, 1 thread, concurrency {CONCURRENCY}, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s per run, {args.rounds} round(s)"
    )
    runs: dict[str, list[Load]] = {SHIPPED_PREDICT: [], SHIPPED_V2: [], HANDWRITTEN: [], BARE: []}
    with tempfile.TemporaryDirectory(prefix="bench_dataplane_") as tmp:
        work = Path(tmp)
        model_dir = models_or_quick_pair(args.models, work)
        with (
            serving("service.main:app", model_dir, work / "shipped.log") as (shipped, _),
            uvicorn_app("handwritten_app:app", model_dir, work / "handwritten.log") as handwritten,
            uvicorn_app("bare_asgi:app", model_dir, work / "bare.log") as bare,
        ):
            plan = [
                (SHIPPED_PREDICT, shipped, "/predict", SINGLE),
                (SHIPPED_V2, shipped, "/v2/models/batchnorm/infer", V2_SINGLE),
                (HANDWRITTEN, handwritten, "/predict", SINGLE),
                (BARE, bare, "/predict", SINGLE),
            ]
            header = f"{'round':>5}  {'server':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            print(header + "\n" + "-" * len(header))
            for round_no in range(1, args.rounds + 1):
                for label, port, path, body in plan:
                    result = load(wrk, work, port, path, body, args.warmup, args.duration)
                    runs[label].append(result)
                    print(
                        f"{round_no:>5}  {label:<18}{result.rps:>9.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
                        f"{result.errors:>8}",
                        flush=True,
                    )
            batch_ms = time_batches(shipped, 10_000, args.batches)
        colds = [cold_start(model_dir, SHIPPED).ready_s for _ in range(args.cold)]
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")

    def rps(label: str) -> float:
        return sum(r.requests for r in runs[label]) / sum(r.seconds for r in runs[label])

    predict, v2, hand, floor = rps(SHIPPED_PREDICT), rps(SHIPPED_V2), rps(HANDWRITTEN), rps(BARE)
    p99 = max(r.p99_ms for r in runs[SHIPPED_PREDICT])
    gap = 1 - v2 / predict
    batch, cold = statistics.median(batch_ms), statistics.median(colds)
    errors = sum(r.errors for rs in runs.values() for r in rs)
    checks = [
        (
            f"shipped /predict vs hand-written: {predict / hand:.2f}x ({predict:.0f} / {hand:.0f} req/s; target >= "
            f"{TARGET_VS_HANDWRITTEN:g}x)",
            predict / hand >= TARGET_VS_HANDWRITTEN,
        ),
        (
            f"shipped /predict vs bare ASGI: {predict / floor:.1%} ({predict:.0f} / {floor:.0f} req/s; target >= "
            f"{TARGET_VS_BARE:.0%})",
            predict / floor >= TARGET_VS_BARE,
        ),
        (f"shipped /predict p99, worst run: {p99:.2f} ms (target <= {TARGET_P99_MS:g} ms)", p99 <= TARGET_P99_MS),
        (
            f"V2 infer vs /predict: {v2:.0f} vs {predict:.0f} req/s, {gap:+.1%} slower (target within "
            f"{TARGET_V2_GAP:.0%})",
            gap <= TARGET_V2_GAP,
        ),
        (
            f"10,000-passenger batch, end to end: median {batch:.1f} ms (min {min(batch_ms):.1f}, max "
            f"{max(batch_ms):.1f}, n={len(batch_ms)}; target <= {TARGET_BATCH_MS:g} ms)",
            batch <= TARGET_BATCH_MS,
        ),
        (
            f"cold start, spawn to /ready 200: median {cold:.2f} s (min {min(colds):.2f}, max {max(colds):.2f}, "
            f"n={len(colds)}; target <= {TARGET_COLD_S:g} s)",
            cold <= TARGET_COLD_S,
        ),
        (f"failed requests during the load runs: {errors}", errors == 0),
    ]
    for text, ok in checks:
        print(f"{verdict(ok)}  {text}")
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
