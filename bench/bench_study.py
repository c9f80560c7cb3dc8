"""Benchmark: the default study (2 x 2 arms, batched) against a loop of single runs, then every opt-in part.

Run: .venv/bin/python bench/bench_study.py [--seeds 10] [--loop-seeds 2] [--epochs 200] [--default-only]
The per-run loop is `train_run` (both variants of one seed, one scaling) on the first --loop-seeds seeds,
extrapolated linearly to the default study's 2 x seeds runs (every run costs the same: same sizes, same number of
steps). Then the full opt-in set (--sweep --regularization --long --ics) is timed part by part. Wall and CPU
seconds are both printed: on a shared machine the wall clock also counts other programs' turns.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from bench_train import machine_reference

from training.data import load_csv
from training.loop import TrainConfig, make_optimizer
from training.run import train_run
from training.study import LONG_EPOCHS, StudyOptions, run_study

DATA_PATH = Path(__file__).resolve().parent.parent / "data" / "titanic.csv"
TARGET_STUDY_S = 20.0


def main() -> None:
    """Time the default study, a per-run loop of the same work, and the full opt-in set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--loop-seeds", type=int, default=2, help="seeds actually timed for the per-run loop")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--default-only", action="store_true", help="skip the opt-in parts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_csv(DATA_PATH)
    config = TrainConfig(epochs=args.epochs)
    # Pay torch's one-off lazy imports (the first optimizer imports torch._dynamo) before any clock starts.
    make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); reference op {machine_reference():.1f} us; "
        f"{args.seeds} seeds x 2 variants x 2 scalings x {args.epochs} epochs; load average {os.getloadavg()}"
    )
    seeds = tuple(range(args.seeds))
    report = run_study(dataset, config, StudyOptions(seeds=seeds))
    t = report.timings_s
    print(f"default study: {t.study:.2f} s wall, {t.study_cpu:.2f} s CPU{target(t.study, TARGET_STUDY_S, args)}")

    wall, cpu = time.perf_counter(), time.process_time()
    for seed in range(args.loop_seeds):
        train_run(dataset, TrainConfig(epochs=args.epochs, seed=seed))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scale = 2 * args.seeds / args.loop_seeds
    print(
        f"per-run loop: {args.loop_seeds} of {2 * args.seeds} runs timed, {wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"extrapolated: {wall * scale:.1f} s wall, {cpu * scale:.1f} s CPU "
        f"(the batched study is {wall * scale / t.study:.1f}x faster by wall, {cpu * scale / t.study_cpu:.1f}x by CPU)"
    )
    if args.default_only:
        return
    wall, cpu = time.perf_counter(), time.process_time()
    full = run_study(dataset, config, StudyOptions(seeds=seeds, sweep=True, regularization=True, long=True, ics=True))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    f = full.timings_s
    print(
        f"full opt-in set: {wall:.1f} s wall, {cpu:.1f} s CPU: study to {LONG_EPOCHS} epochs {f.study:.1f} s, "
        f"sweep {f.sweep or 0:.1f} s, regularization {f.regularization or 0:.1f} s, ics {f.ics or 0:.1f} s"
    )


def target(seconds: float, limit: float, args: argparse.Namespace) -> str:
    """Whether a wall time meets its target (the target is for the default 10 seeds x 200 epochs)."""
    if (args.seeds, args.epochs) != (10, 200):
        return " (the target applies to 10 seeds x 200 epochs)"
    return f" ({'meets' if seconds < limit else 'misses'} the {limit:.0f} s target)"


if __name__ == "__main__":
    main()
