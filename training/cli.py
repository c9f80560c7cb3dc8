"""Command line: `python -m training [train] ...` (default), `study`, `report`, `evaluate`, `export`, `runs`,
`promote`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from survival.checkpoint import CheckpointError
from survival.runs import RUNS_KEPT, save_run
from survival.torch_checkpoint import load_pair
from training.data import DataError, load_csv
from training.evaluate import evaluate_pair, evaluation_table
from training.loop import TrainConfig
from training.metrics import metrics_table
from training.run import RunResult, resolve_device, train_run
from training.runs_cli import (
    add_lock_timeout,
    check_writable,
    promote_command,
    reuse_reason,
    runs_command,
    stderr_line,
)

DEFAULT_DATA_PATH = Path("data/titanic.csv")
DEFAULT_MODEL_DIR = Path("models")
# Measured (bench/bench_train.py): at this model size a second thread only adds synchronisation.
DEFAULT_THREADS = 1


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = float(text)
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def batch_size(text: str) -> int:
    """argparse type: a batch size >= 2 (BatchNorm needs two rows to compute a variance)."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (BatchNorm needs two rows per batch), got {value}")
    return value


def add_common(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand shares."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="labelled CSV (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="default: %(default)s")
    parser.add_argument(
        "--threads", type=positive_int, default=DEFAULT_THREADS, help="torch CPU threads (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def train_parser() -> argparse.ArgumentParser:
    """The parser of the default `train` command."""
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the batchnorm and plain variants under identical conditions and write both checkpoints. "
        "Other commands (each with --help): study, report, evaluate, export, runs, promote.",
    )
    add_common(parser)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="model directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="split, init and batch-order seed (default: %(default)s)")
    parser.add_argument("--epochs", type=positive_int, default=200, help="default: %(default)s")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=batch_size, default=32, help="default: %(default)s")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[16, 8], help="default: 16 8")
    parser.add_argument("--standardize", action="store_true", help="z-score the inputs (off in the experiment)")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="exit 0 at once when the current run is loadable and was trained on this data with these settings "
        "(env RETRAIN=1 overrides)",
    )
    parser.add_argument(
        "--keep",
        type=positive_int,
        default=RUNS_KEPT,
        help="complete runs kept, current included (default: %(default)s)",
    )
    add_lock_timeout(parser)
    return parser


def run_train(argv: Sequence[str]) -> int:
    """Train both variants and write the checkpoint pair."""
    args = train_parser().parse_args(argv)
    args.resolved_device = resolve_device(args.device)
    check_writable(args.out)
    if args.if_missing and not retrain_forced():
        reused, why = reuse_reason(args)
        if reused is not None:
            print(f"{why} (set RETRAIN=1 to force)")
            return 0
        stderr_line(why)
    torch.set_num_threads(args.threads)
    dataset = load_csv(args.data)
    config = TrainConfig(
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        hidden=tuple(args.hidden),
        seed=args.seed,
        standardize=args.standardize,
        device=args.resolved_device,
    )
    result = train_run(dataset, config, progress=not args.quiet)
    try:
        run_dir = save_run(
            args.out, result.run_id, result.checkpoint_payload(), keep=args.keep, lock_timeout_s=args.lock_timeout
        )
    except OSError as exc:
        raise OSError(f"cannot write the run to {args.out}: {exc}") from None
    print(summary(result))
    print(f"wrote {run_dir} (linked as {args.out / 'current'})")
    return 0


def summary(result: RunResult) -> str:
    """A small table of the final-epoch validation metrics."""
    d = result.data
    lines = [
        f"data {d.file_name} sha256 {d.sha256[:12]}: {d.n_train} train / {d.n_val} validation rows, "
        f"seed {result.config.seed}, {result.config.epochs} epochs",
        *metrics_table((name, v.metrics) for name, v in result.variants.items()),
    ]
    lines.append(f"{'majority':<10} {result.baseline.majority_accuracy:>8.3f}  (always predicts the majority class)")
    return "\n".join(lines)


def retrain_forced() -> bool:
    """Whether the RETRAIN environment variable asks to ignore --if-missing."""
    return os.environ.get("RETRAIN", "").lower() in ("1", "true", "yes")


def evaluate_parser() -> argparse.ArgumentParser:
    """The parser of the `evaluate` command."""
    parser = argparse.ArgumentParser(
        prog="python -m training evaluate",
        description="Score both served checkpoints on a labelled CSV (same loader and rules as training).",
    )
    parser.add_argument("--data", type=Path, required=True, help="labelled CSV with Survived, Pclass, Fare, Age")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODEL_DIR, help="model directory (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    return parser


def run_evaluate_command(argv: Sequence[str]) -> int:
    """Print both checkpoints' metrics on a labelled file."""
    args = evaluate_parser().parse_args(argv)
    pair = load_pair(args.models)
    report = evaluate_pair(pair, load_csv(args.data))
    print(report.model_dump_json(indent=2) if args.json else evaluation_table(report))
    return 0


def run_export(argv: Sequence[str]) -> int:
    """Export a run to ONNX; the command needs the optional `export` extra (onnx), the rest of the trainer does not."""
    try:
        from training.export import run_export_command
    except ImportError as exc:
        print(f"error: the export needs the export extra (pip install -e '.[export]'): {exc}", file=sys.stderr)
        return 1
    return run_export_command(argv)


def run_study_command(argv: Sequence[str]) -> int:
    """Run the study (`training.study_cli`)."""
    from training.study_cli import study_command

    return study_command(argv)


def run_report(argv: Sequence[str]) -> int:
    """Regenerate the README's Results block and the results page from a committed study.json."""
    from training.report_cli import report_command

    return report_command(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": run_train,
    "study": run_study_command,
    "report": run_report,
    "evaluate": run_evaluate_command,
    "export": run_export,
    "runs": runs_command,
    "promote": promote_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; bad data or settings end with one clear line and exit status 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: Callable[[Sequence[str]], int] = run_train
    if args and args[0] in COMMANDS:
        command = COMMANDS[args.pop(0)]
    try:
        return command(args)
    except (DataError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; previous checkpoints are untouched", file=sys.stderr)
        return 130
