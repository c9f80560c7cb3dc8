"""The run-management commands: `python -m training runs`, `promote RUN_ID`, and --if-missing's reuse rule."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from survival.checkpoint import CURRENT_LINK, CheckpointError, CheckpointMetadata, sha256_file
from survival.runs import LOCK_TIMEOUT_S, list_runs, promote
from survival.served import load_served_current
from survival.variants import VARIANTS

DEFAULT_MODEL_DIR: Final[Path] = Path("models")


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_lock_timeout(parser: argparse.ArgumentParser) -> None:
    """The flag of every command that writes the model directory."""
    parser.add_argument(
        "--lock-timeout",
        type=non_negative_float,
        default=LOCK_TIMEOUT_S,
        help="seconds to wait for another trainer writing the model directory (default: %(default)s)",
    )


def runs_command(argv: Sequence[str]) -> int:
    """Print the complete runs in the model directory, oldest first, marking the current one."""
    parser = argparse.ArgumentParser(prog="python -m training runs", description="List the runs on disk.")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="model directory (default: %(default)s)")
    args = parser.parse_args(argv)
    runs = list_runs(args.out)
    if not runs:
        print(f"no runs in {args.out}")
        return 0
    print(
        f"  {'run id':<31} {'created':<25} {'seed':>4} {'epochs':>6}  {'data':<24} "
        + " ".join(f"{v:>9}" for v in VARIANTS)
    )
    for run in runs:
        data = f"{run.data_file} {run.data_sha256[:8]}"
        accuracy = " ".join(f"{run.accuracy[v]:>9.3f}" for v in VARIANTS)
        mark = "*" if run.current else " "
        print(f"{mark} {run.run_id:<31} {run.created_at:<25} {run.seed:>4} {run.epochs:>6}  {data:<24} {accuracy}")
    print("* current")
    return 0


def promote_command(argv: Sequence[str]) -> int:
    """Point `current` at an existing complete run (roll back or forward)."""
    parser = argparse.ArgumentParser(
        prog="python -m training promote",
        description="Point <out>/current at an existing run, after verifying it as the service will.",
    )
    parser.add_argument("run_id", help="a run id as `python -m training runs` lists it")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="model directory (default: %(default)s)")
    add_lock_timeout(parser)
    args = parser.parse_args(argv)
    run_dir = promote(args.out, args.run_id, lock_timeout_s=args.lock_timeout)
    print(f"{args.out / 'current'} -> {run_dir}")
    return 0


def settings_differ(meta: CheckpointMetadata, args: argparse.Namespace) -> list[str]:
    """The training settings of `meta` that a train command's `args` would change, worded 'name old -> new'."""
    hyper = meta.hyperparameters
    pairs = {
        "seed": (meta.seed, args.seed),
        "epochs": (hyper.epochs, args.epochs),
        "lr": (hyper.learning_rate, args.lr),
        "batch-size": (hyper.batch_size, args.batch_size),
        "hidden": (list(meta.model.hidden), list(args.hidden)),
        "standardize": (meta.preprocessing.standardize, args.standardize),
        "device": (hyper.device, args.resolved_device),
    }
    return [f"{name} {old} -> {new}" for name, (old, new) in pairs.items() if old != new]


def reuse_reason(args: argparse.Namespace) -> tuple[str | None, str]:
    """For --if-missing: (the current run id if it can be reused, else None) and the one line that says why."""
    if not (args.out / CURRENT_LINK).is_symlink():
        return None, f"training: {args.out} holds no run yet; training the first pair now"
    try:
        _, pair = load_served_current(args.out)
    except CheckpointError as exc:
        return None, f"training: no usable run ({exc}); training a new pair now"
    meta = pair["batchnorm"].metadata
    try:
        data_sha = sha256_file(args.data)
    except OSError as exc:
        return None, f"training: cannot read {args.data} ({exc.strerror})"
    if meta.data.sha256 != data_sha:
        return None, (
            f"training: run {meta.run_id} was trained on other data ({meta.data.file_name} sha256 "
            f"{meta.data.sha256[:12]}, not {args.data} {data_sha[:12]})"
        )
    changed = settings_differ(meta, args)
    if changed:
        return None, f"training: run {meta.run_id} was trained with other settings ({', '.join(changed)})"
    return meta.run_id, f"run {meta.run_id} in {args.out} was trained on this data with these settings; not retraining"


def check_writable(model_dir: Path) -> None:
    """Fail at once, before any training, when the model directory cannot be created or written."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        probe = model_dir / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OSError(f"--out {model_dir}: cannot write there ({exc.strerror or exc})") from None


def stderr_line(text: str) -> None:
    """One line on stderr."""
    print(text, file=sys.stderr, flush=True)
