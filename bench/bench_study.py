"""Benchmark: the default study (2 x 2 arms, batched) against a loop of single runs, then every opt-in part;
with --designs, which resampling design detects the smallest primary effect in a time budget.

Run: .venv/bin/python bench/bench_study.py [--seeds 10] [--folds K] [--loop-seeds 2] [--epochs 200] [--default-only]
     (the plan's default design: --seeds 30 --folds 10)
     .venv/bin/python bench/bench_study.py --designs [--budget 120] [--pilot 60]
--designs trains a pilot of --pilot resamples (raw inputs) per design (hold-out, 5-fold, 10-fold), measures its
time per resample and the spread of the primary outcome's paired difference, and prints the minimum detectable
effect (corrected variance, the plan's alpha and power) of the 2 x 2 that fits --budget seconds.
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

import numpy as np
import torch
from bench_train import machine_reference

from training.data import Dataset, load_csv
from training.loop import TrainConfig, make_optimizer
from training.run import train_run
from training.study import LONG_EPOCHS, StudyOptions, run_study
from training.study_plan import ALPHA, POWER
from training.study_stats import mde, mde_limit

DATA_PATH = Path(__file__).resolve().parent.parent / "data" / "titanic.csv"
TARGET_STUDY_S = 20.0


def main() -> None:
    """Time the default study, a per-run loop of the same work, and the full opt-in set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--folds", type=int, default=None, help="repeated stratified K-fold (default: hold-out)")
    parser.add_argument("--loop-seeds", type=int, default=2, help="seeds actually timed for the per-run loop")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--default-only", action="store_true", help="skip the opt-in parts")
    parser.add_argument("--designs", action="store_true", help="compare resampling designs' MDE in --budget")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the default 2 x 2 (--designs)")
    parser.add_argument("--pilot", type=int, default=60, help="pilot resamples per design (--designs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_csv(DATA_PATH)
    config = TrainConfig(epochs=args.epochs)
    # Pay torch's one-off lazy imports (the first optimizer imports torch._dynamo) before any clock starts.
    make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    if args.designs:
        designs(dataset, config, args.budget, args.pilot)
        return
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); reference op {machine_reference():.1f} us; "
        f"{args.seeds} seeds{f' x {args.folds} folds' if args.folds else ''} x 2 variants x 2 scalings x "
        f"{args.epochs} epochs; load average {os.getloadavg()}"
    )
    seeds = tuple(range(args.seeds))
    report = run_study(dataset, config, StudyOptions(seeds=seeds, folds=args.folds))
    t = report.timings_s
    print(f"default study: {t.study:.2f} s wall, {t.study_cpu:.2f} s CPU{target(t.study, TARGET_STUDY_S, args)}")

    wall, cpu = time.perf_counter(), time.process_time()
    for seed in range(args.loop_seeds):
        train_run(dataset, TrainConfig(epochs=args.epochs, seed=seed))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    runs = 2 * report.settings.resamples  # one run trains both variants of one resample on one scaling
    scale = runs / args.loop_seeds
    print(
        f"per-run loop: {args.loop_seeds} of {runs} runs timed, {wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"extrapolated: {wall * scale:.1f} s wall, {cpu * scale:.1f} s CPU "
        f"(the batched study is {wall * scale / t.study:.1f}x faster by wall, {cpu * scale / t.study_cpu:.1f}x by CPU)"
    )
    if args.default_only:
        return
    wall, cpu = time.perf_counter(), time.process_time()
    every = StudyOptions(seeds=seeds, folds=args.folds, sweep=True, regularization=True, long=True, ics=True)
    full = run_study(dataset, config, every)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    f = full.timings_s
    print(
        f"full opt-in set: {wall:.1f} s wall, {cpu:.1f} s CPU: study to {LONG_EPOCHS} epochs {f.study:.1f} s, "
        f"sweep {f.sweep or 0:.1f} s, regularization {f.regularization or 0:.1f} s, ics {f.ics or 0:.1f} s"
    )


def designs(dataset: Dataset, config: TrainConfig, budget: float, pilot: int) -> None:
    """Each design's MDE for the primary outcome when its 2 x 2 gets `budget` seconds."""
    print(f"designs: pilot of {pilot} resamples each (raw inputs), 2 x 2 budget {budget:.0f} s, "
          f"alpha {ALPHA}, power {POWER}")  # fmt: skip
    for folds in (None, 5, 10):
        seeds = tuple(range(pilot // (folds or 1)))
        options = StudyOptions(seeds=seeds, folds=folds, scalings=("raw",))
        report = run_study(dataset, config, options)
        per_resample = 2 * report.timings_s.study / report.settings.resamples  # both scalings in the 2 x 2
        diffs = np.subtract(report.arms["batchnorm/raw"].accuracy.values, report.arms["plain/raw"].accuracy.values)
        sd, ratio = 100 * float(diffs.std(ddof=1)), report.data.n_val / report.data.n_train
        fit = max(2, int(budget / per_resample) // (folds or 1))
        resamples = fit * (folds or 1)
        name = f"{folds}-fold" if folds else "hold-out"
        print(
            f"{name:>8}: {per_resample:.3f} s per resample (2 x 2), sd {sd:.2f} points, n_test/n_train {ratio:.3f}; "
            f"{fit} seeds ({resamples} resamples) fit: MDE {mde(sd, resamples, ratio, ALPHA, POWER):.2f} points "
            f"(unlimited seeds: {mde_limit(sd, ratio, ALPHA, POWER):.2f})"
        )


def target(seconds: float, limit: float, args: argparse.Namespace) -> str:
    """Whether a wall time meets its target (the target is for the default 10 seeds x 200 epochs)."""
    if (args.seeds, args.epochs, args.folds) != (10, 200, None):
        return " (the target applies to 10 seeds x 200 epochs)"
    return f" ({'meets' if seconds < limit else 'misses'} the {limit:.0f} s target)"


if __name__ == "__main__":
    main()
