"""Hot swap under load: concurrency 32 on POST /predict while new runs are saved and promoted.

Usage:
    .venv/bin/python bench/bench_swap.py [--models DIR] [--concurrency 32] [--duration 20] [--baseline 10]
                                         [--poll 1.0] [--check]

Starts the shipped server (`python -m service`, one worker, RELOAD_POLL_S=--poll) on a copy of the models (a quick
pair when none is given), and drives it with --concurrency keep-alive connections (an asyncio client in this
process): first --baseline seconds without swaps, then --duration seconds during which three new runs are saved
(each becoming `current`) and the first of them is promoted back, evenly spaced. Prints requests, failures, the runs
seen, for each flip the time to the first answer of the new run and to the last answer of an older one (after which
every answer is the new run's), and p50/p99 latency with and without swaps.

Targets (issue 9): 0 failures, every answer on the new run within 2 s of a flip, p99 during swaps within 2x of
p99 without. --check exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from server import HOST, models_or_quick_pair, serving

from survival.runs import VariantPayload, promote, save_run
from survival.variants import VariantName
from training.data import load_csv
from training.loop import TrainConfig
from training.run import train_run

DATA_PATH: Final[Path] = Path(__file__).resolve().parent.parent / "data" / "titanic.csv"
REQUEST: Final[bytes] = (
    b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n"
    b'{"pclass":3,"fare":7.25,"age":22}'
)
TARGET_SWAP_S: Final[float] = 2.0
TARGET_P99_RATIO: Final[float] = 2.0


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and answered (monotonic seconds), and the run that answered (None: failed)."""

    sent: float
    done: float
    run_id: str | None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def client(port: int, stop_at: float, answers: list[Answer]) -> None:
    """One keep-alive connection sending requests until `stop_at`; a failure reconnects."""
    reader, writer = await asyncio.open_connection(HOST, port)
    while (sent := time.monotonic()) < stop_at:
        try:
            writer.write(REQUEST)
            status, body = await read_response(reader)
            run_id = json.loads(body)["models"]["batchnorm"]["run_id"] if status == 200 else None
            if status == 200 and len({m["run_id"] for m in json.loads(body)["models"].values()}) != 1:
                run_id = None  # a mixed answer counts as a failure
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
            run_id = None
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
        answers.append(Answer(sent, time.monotonic(), run_id))
    writer.close()


async def drive(
    port: int,
    concurrency: int,
    seconds: float,
    flips: list[tuple[float, str]],
    models: Path,
    payloads: dict[str, dict[VariantName, VariantPayload]],
) -> tuple[list[Answer], list[tuple[str, float]]]:
    """Run the load for `seconds`; at each (offset, run_id) save (or, if saved already, promote) that run."""
    start = time.monotonic()
    answers: list[Answer] = []
    done_flips: list[tuple[str, float]] = []

    async def flipper() -> None:
        saved: set[str] = set()
        for offset, run_id in flips:
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            if run_id in saved:
                await asyncio.to_thread(promote, models, run_id)
            else:
                await asyncio.to_thread(save_run, models, run_id, payloads[run_id])
                saved.add(run_id)
            done_flips.append((run_id, time.monotonic()))

    await asyncio.gather(flipper(), *(client(port, start + seconds, answers) for _ in range(concurrency)))
    return answers, done_flips


def percentile_ms(answers: list[Answer], q: float) -> float:
    """The q-quantile of the latencies, in milliseconds."""
    latencies = sorted(a.done - a.sent for a in answers)
    return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]


def main() -> int:
    """Measure, print, compare with the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, help="model directory to copy (default: train a quick pair)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load with swaps (default: 20)")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of load without swaps (default: 10)")
    parser.add_argument("--poll", type=float, default=1.0, help="RELOAD_POLL_S of the server (default: 1)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        source = models_or_quick_pair(args.models, Path(work) / "source")
        models = Path(work) / "models"
        shutil.copytree(source, models, symlinks=True)
        print("training three more quick runs (5 epochs) ...", flush=True)
        dataset = load_csv(DATA_PATH)
        results = [train_run(dataset, TrainConfig(epochs=5, seed=seed)) for seed in (1, 2, 3)]
        payloads = {r.run_id: r.checkpoint_payload() for r in results}
        ids = [r.run_id for r in results]
        step = args.duration / 5
        flips = [(step * (k + 1), run_id) for k, run_id in enumerate([*ids, ids[0]])]
        os.environ["RELOAD_POLL_S"] = str(args.poll)
        with serving("service.main:app", models, Path(work) / "server.log") as (port, _):
            baseline, _ = asyncio.run(drive(port, args.concurrency, args.baseline, [], models, payloads))
            swapping, done_flips = asyncio.run(drive(port, args.concurrency, args.duration, flips, models, payloads))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    failures = sum(a.run_id is None for a in baseline + swapping)
    print(f"requests: {len(baseline)} without swaps, {len(swapping)} with; failures: {failures}")
    print(f"runs seen during swaps: {len({a.run_id for a in swapping if a.run_id})}")
    worst = 0.0
    for k, (run_id, at) in enumerate(done_flips):
        until = done_flips[k + 1][1] if k + 1 < len(done_flips) else float("inf")
        window = [a for a in swapping if at <= a.done < until and a.run_id is not None]
        first_new = min((a.done for a in window if a.run_id == run_id), default=float("nan"))
        last_old = max((a.done for a in window if a.run_id != run_id), default=at)
        worst = max(worst, last_old - at, first_new - at)
        print(
            f"flip {k + 1} to {run_id}: first answer of it after {first_new - at:.3f} s, last older answer after "
            f"{last_old - at:.3f} s"
        )
    p50 = (percentile_ms(baseline, 0.5), percentile_ms(swapping, 0.5))
    p99 = (percentile_ms(baseline, 0.99), percentile_ms(swapping, 0.99))
    print(
        f"latency without swaps: p50 {p50[0]:.1f} ms, p99 {p99[0]:.1f} ms; with swaps: p50 {p50[1]:.1f} ms, "
        f"p99 {p99[1]:.1f} ms ({p99[1] / p99[0]:.2f}x)"
    )
    ok = [failures == 0, worst <= TARGET_SWAP_S, p99[1] <= TARGET_P99_RATIO * p99[0]]
    for passed, text in zip(ok, ("0 failures", f"new run within {TARGET_SWAP_S:g} s", "p99 within 2x"), strict=True):
        print(f"{text}: {'PASS' if passed else 'MISS'}")
    if statistics.fmean(ok) < 1 and args.check:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
