"""Command line of `python -m training study`: its flags, the --if-missing check and the run."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch

from survival.study import STUDY_FILE, Scaling, load_study
from training.cli import DEFAULT_MODEL_DIR, add_common, positive_int, retrain_forced
from training.data import load_csv
from training.loop import TrainConfig
from training.run import resolve_device
from training.study import LONG_EPOCHS, StudyOptions, run_study, write_study
from training.study_plan import DEFAULT_FOLDS, DEFAULT_SEEDS
from training.study_table import table


def seed_count(text: str) -> int:
    """argparse type: a number of seeds >= 2 (a confidence interval needs two)."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a confidence interval needs two seeds), got {value}")
    return value


def study_parser() -> argparse.ArgumentParser:
    """The parser of the `study` command."""
    parser = argparse.ArgumentParser(
        prog="python -m training study",
        description="Train both variants on raw and on standardized inputs over seeds 0..N-1 (the trainer's "
        "protocol, batched), compare them resample by resample, test the experiment's claims as the declared plan "
        "(training/study_plan.py) says, and write <out>/study.json.",
    )
    add_common(parser)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="model directory (default: %(default)s)")
    parser.add_argument(
        "--seeds", type=seed_count, default=DEFAULT_SEEDS, help="number of seeds (default: the plan's %(default)s)"
    )
    parser.add_argument("--epochs", type=positive_int, default=200, help="default: %(default)s")
    parser.add_argument(
        "--folds",
        type=fold_count,
        default=DEFAULT_FOLDS,
        help="repeated stratified K-fold per seed (default: the plan's %(default)s)",
    )
    parser.add_argument(
        "--holdout", action="store_true", help="one stratified hold-out split per seed instead of K-fold"
    )
    parser.add_argument(
        "--scaling",
        choices=("both", "raw", "standardized"),
        default="both",
        help="input scalings to run (default: both, the 2 x 2)",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also sweep Adam lr 1e-3/1e-2/5e-2 and SGD lr 0.01/0.1/0.5 on the seeds"
    )
    parser.add_argument(
        "--regularization", action="store_true", help="also train with dropout 0.2 and with weight decay 1e-3"
    )
    parser.add_argument("--long", action="store_true", help=f"train to {LONG_EPOCHS} epochs (read at 25..1000)")
    parser.add_argument(
        "--ics", action="store_true", help="measure internal covariate shift and gradient predictiveness"
    )
    parser.add_argument("--all", action="store_true", help="every opt-in part: --sweep --regularization --long --ics")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="exit 0 at once when <out>/study.json already holds this study (same data and settings); "
        "env RETRAIN=1 overrides",
    )
    return parser


def fold_count(text: str) -> int:
    """argparse type: a number of folds >= 2."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {value}")
    return value


def study_options(args: argparse.Namespace) -> StudyOptions:
    """The study the flags ask for."""
    scalings: tuple[Scaling, ...] = ("raw", "standardized") if args.scaling == "both" else (args.scaling,)
    return StudyOptions(
        seeds=tuple(range(args.seeds)),
        folds=None if args.holdout else args.folds,
        scalings=scalings,
        sweep=args.sweep or args.all,
        regularization=args.regularization or args.all,
        long=args.long or args.all,
        ics=args.ics or args.all,
        progress=not args.quiet,
    )


def study_is_current(path: Path, options: StudyOptions, epochs: int, data_sha256: str) -> bool:
    """Whether `path` already answers this exact study request."""
    try:
        existing = load_study(path)
    except ValueError:
        return False
    if existing is None:
        return False
    s = existing.settings
    return (
        existing.data.sha256 == data_sha256
        and s.seeds == list(options.seeds)
        and s.folds == options.folds
        and s.scalings == list(options.scalings)
        and s.epochs == epochs
        and (existing.sweep is not None or not options.sweep)
        and (existing.regularization is not None or not options.regularization)
        and (existing.ics is not None or not options.ics)
        and (
            max(p.epoch for p in existing.arms[next(iter(existing.arms))].at_epochs) >= LONG_EPOCHS or not options.long
        )
    )


def study_command(argv: Sequence[str]) -> int:
    """Run the study and write its results next to the checkpoints."""
    args = study_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_csv(args.data)
    options = study_options(args)
    if (
        args.if_missing
        and not retrain_forced()
        and study_is_current(args.out / STUDY_FILE, options, args.epochs, dataset.sha256)
    ):
        print(f"{args.out / STUDY_FILE} already holds this study; not rerunning (set RETRAIN=1 to force)")
        return 0
    config = TrainConfig(epochs=args.epochs, device=resolve_device(args.device))
    report = run_study(dataset, config, options)
    path = write_study(report, args.out)
    print(table(report))
    print(textwrap.fill(report.verdict, width=120, break_on_hyphens=False, break_long_words=False))
    print(f"wrote {path}")
    return 0
