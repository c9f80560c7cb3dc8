"""Benchmark: the multi-seed study as one batched computation against a loop of single runs, and the sweep.

Run: .venv/bin/python bench/bench_study.py [--seeds 10] [--loop-seeds 2] [--epochs 200] [--no-sweep]
The per-run loop is the trainer itself (`train_run`, both variants per seed) on the first --loop-seeds seeds,
extrapolated linearly to --seeds (every seed costs the same: same sizes, same number of steps). Wall and CPU
seconds are both printed: on a shared machine the wall clock also counts other programs' turns.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_train import machine_reference

from training.data import load_csv
from training.loop import TrainConfig, make_optimizer
from training.run import train_run
from training.study import run_study

DATA_PATH = Path(__file__).resolve().parent.parent / "data" / "titanic.csv"
TARGET_STUDY_S = 10.0
TARGET_SWEEP_S = 60.0


def main() -> None:
    """Time the batched study, a per-run loop of the same study, and the learning-rate sweep."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--loop-seeds", type=int, default=2, help="seeds actually timed for the per-run loop")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_csv(DATA_PATH)
    config = TrainConfig(epochs=args.epochs)
    # Pay torch's one-off lazy imports (the first optimizer imports torch._dynamo) before any clock starts.
    make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); reference op {machine_reference():.1f} us; "
        f"{args.seeds} seeds x 2 variants x {args.epochs} epochs"
    )

    report = run_study(dataset, range(args.seeds), config, sweep=not args.no_sweep)
    t = report.timings_s
    print(f"batched study: {t.study:.2f} s wall, {t.study_cpu or 0:.2f} s CPU{target(t.study, TARGET_STUDY_S, args)}")

    wall, cpu = time.perf_counter(), time.process_time()
    for seed in range(args.loop_seeds):
        train_run(dataset, TrainConfig(epochs=args.epochs, seed=seed))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scale = args.seeds / args.loop_seeds
    print(
        f"per-run loop: {args.loop_seeds} of {args.seeds} seeds timed, {wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"extrapolated to {args.seeds} seeds: {wall * scale:.1f} s wall, {cpu * scale:.1f} s CPU"
    )
    speedup_cpu = cpu * scale / (t.study_cpu or 1)
    print(f"speed-up of the batched study: {wall * scale / t.study:.1f}x wall, {speedup_cpu:.1f}x CPU")
    if t.sweep is not None:
        print(
            f"sweep (6 optimizer/learning-rate settings, one reused from the study): {t.sweep:.2f} s wall, "
            f"{t.sweep_cpu or 0:.2f} s CPU{target(t.sweep, TARGET_SWEEP_S, args)}"
        )


def target(seconds: float, limit: float, args: argparse.Namespace) -> str:
    """Whether a wall time meets its target (the targets are for the default 10 seeds x 200 epochs)."""
    if (args.seeds, args.epochs) != (10, 200):
        return " (targets apply to 10 seeds x 200 epochs)"
    return f" ({'meets' if seconds < limit else 'misses'} the {limit:.0f} s target)"


if __name__ == "__main__":
    main()
