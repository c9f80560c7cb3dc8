"""The model directory on disk: write a run atomically, point ``current`` at it, prune old runs.

A run is written under ``runs/.tmp-<run_id>`` and only renamed and linked once every variant and
every artifact is on disk, so a crash or bad input never leaves a half-written or mixed pair
behind ``current`` and never touches the previous good run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict
from safetensors.numpy import save_file

from survival.checkpoint import (
    CURRENT_LINK,
    METADATA_FILE,
    RUNS_DIR,
    SERVED_FILE,
    TMP_PREFIX,
    WEIGHTS_FILE,
    CheckpointError,
    CheckpointMetadata,
    check_artifact_name,
    check_pair,
    read_metadata,
    sha256_file,
)
from survival.served import load_served_run
from survival.variants import VARIANTS, VariantName

# Keep the current run and the two before it, so an operator can roll back (`python -m training promote`).
RUNS_KEPT: Final[int] = 3
LOCK_FILE: Final[str] = ".lock"
# How long a second writer waits for the model directory's lock before giving up with a message.
LOCK_TIMEOUT_S: Final[float] = 600.0
# /runs and `python -m training runs` read every run's metadata: bounded, newest first.
RUNS_LISTED: Final[int] = 100

Arrays = Mapping[str, np.ndarray[Any, Any]]


@dataclass(frozen=True)
class VariantPayload:
    """What `save_run` writes for one variant.

    `weights`: the training state dict (NumPy arrays, read back into a SurvivalNet by torch);
    `served`: the folded float64 layers the service loads (`survival.served.layer_tensors`);
    `metadata`: the CheckpointMetadata fields except those filled here from the bytes written
    (tensors, weights_sha256, served_tensors, served_sha256, artifacts);
    `artifacts`: extra files by name (e.g. ``reference.json``), written in the same atomic step, their
    sha256 recorded in the metadata and verified at every load (`ServedCheckpoint.artifacts`).
    """

    weights: Arrays
    served: Arrays
    metadata: Mapping[str, Any]
    artifacts: Mapping[str, bytes] = field(default_factory=dict)


class LockTimeoutError(CheckpointError):
    """Another process held the model directory's lock for longer than we were willing to wait."""


@contextmanager
def model_dir_lock(model_dir: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the model directory's write lock (saving, pruning, promoting), waiting up to `timeout_s` for it.

    An advisory fcntl.flock on ``<model_dir>/.lock``: the kernel releases it when the holder exits or is killed,
    so a crashed trainer never leaves the directory locked. Readers (the service) never take it.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / LOCK_FILE
    with path.open("a") as fh:
        deadline = time.monotonic() + timeout_s
        said = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"{path}: another trainer is still writing to {model_dir} after {timeout_s:g} s; "
                        "try again when it is done"
                    ) from None
                if not said:
                    print(f"waiting for another trainer writing to {model_dir} ...", file=sys.stderr, flush=True)
                    said = True
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def save_run(
    model_dir: Path,
    run_id: str,
    variants: Mapping[VariantName, VariantPayload],
    *,
    keep: int = RUNS_KEPT,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> Path:
    """Write every variant of a run atomically, point ``current`` at it and prune; returns the run directory.

    Holds the model directory's lock throughout, so two trainers never prune each other's run in progress.
    """
    for payload in variants.values():
        for name in payload.artifacts:
            check_artifact_name(name)
    with model_dir_lock(model_dir, lock_timeout_s):
        return _save_locked(model_dir, run_id, variants, keep)


def _save_locked(model_dir: Path, run_id: str, variants: Mapping[VariantName, VariantPayload], keep: int) -> Path:
    runs_dir = model_dir / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = runs_dir / f"{TMP_PREFIX}{run_id}"
    final_dir = runs_dir / run_id
    if final_dir.exists():
        raise CheckpointError(f"{final_dir}: a run with this id already exists")
    try:
        for name, payload in variants.items():
            _write_variant(tmp_dir / name, payload)
        os.replace(tmp_dir, final_dir)
        _fsync(runs_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    point_current(model_dir, run_id)
    prune_runs(model_dir, keep)
    return final_dir


def _write_variant(vdir: Path, payload: VariantPayload) -> None:
    vdir.mkdir(parents=True)
    full = dict(payload.metadata)
    for file_name, arrays, shapes_key, sha_key in (
        (WEIGHTS_FILE, payload.weights, "tensors", "weights_sha256"),
        (SERVED_FILE, payload.served, "served_tensors", "served_sha256"),
    ):
        path = vdir / file_name
        save_file({k: np.asarray(v, order="C") for k, v in arrays.items()}, str(path))
        _fsync(path)
        full[shapes_key] = {k: list(v.shape) for k, v in arrays.items()}
        full[sha_key] = sha256_file(path)
    full["artifacts"] = {}
    for file_name, data in payload.artifacts.items():
        path = vdir / file_name
        path.write_bytes(data)
        _fsync(path)
        full["artifacts"][file_name] = sha256_file(path)
    # Validate before writing: a metadata file that cannot be loaded back is never produced.
    text = CheckpointMetadata.model_validate(full).model_dump_json(indent=2)
    (vdir / METADATA_FILE).write_text(text + "\n", encoding="utf-8")
    _fsync(vdir / METADATA_FILE)


def point_current(model_dir: Path, run_id: str) -> None:
    """Swap the ``current`` link to ``runs/<run_id>`` atomically: a reader sees the old run or the new one."""
    link_tmp = model_dir / f"{TMP_PREFIX}{CURRENT_LINK}-{run_id}"
    link_tmp.unlink(missing_ok=True)
    os.symlink(Path(RUNS_DIR) / run_id, link_tmp)
    os.replace(link_tmp, model_dir / CURRENT_LINK)
    _fsync(model_dir)


def current_target(model_dir: Path) -> Path | None:
    """The run directory ``current`` resolves to, or None when it points nowhere."""
    link = model_dir / CURRENT_LINK
    return link.resolve() if link.is_dir() else None


def promote(model_dir: Path, run_id: str, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Path:
    """Point ``current`` at an existing run after loading it as the service will; refuses an unknown or bad run."""
    run_dir = model_dir / RUNS_DIR / run_id
    if not run_id or run_id != Path(run_id).name or run_id.startswith(".") or not run_dir.is_dir():
        known = ", ".join(r.run_id for r in list_runs(model_dir)) or "none"
        raise CheckpointError(f"{run_dir}: no such run (runs here: {known})")
    with model_dir_lock(model_dir, lock_timeout_s):
        load_served_run(run_dir)  # every check the service makes: hashes, shapes, a pair from one run
        point_current(model_dir, run_id)
    return run_dir


class RunSummary(BaseModel):
    """One complete run on disk, as `python -m training runs` and GET /runs list it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    created_at: str
    seed: int
    epochs: int
    data_file: str
    data_sha256: str
    accuracy: dict[VariantName, float]
    current: bool


def list_runs(model_dir: Path, problems: list[str] | None = None) -> list[RunSummary]:
    """Every complete run (both variants' metadata readable and naming this run), oldest first; bounded.

    A run that cannot be listed is skipped; with `problems`, why is added to it (paths relative to `model_dir`).
    """
    runs_dir = model_dir / RUNS_DIR
    report = problems.append if problems is not None else lambda problem: None
    try:
        if not runs_dir.is_dir():
            return []
        names = sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        report(f"{RUNS_DIR}/: cannot be read ({exc.strerror})")
        return []
    try:
        current = current_target(model_dir)
    except OSError as exc:
        report(f"{CURRENT_LINK}: cannot be read ({exc.strerror})")
        current = None
    runs = []
    for name in names[-RUNS_LISTED:]:
        run_dir = runs_dir / name
        try:
            meta = {variant: read_metadata(run_dir / variant) for variant in VARIANTS}
            check_pair(run_dir, meta)
        except CheckpointError as exc:
            # Incomplete or mixed: not a run one could promote.
            report(str(exc).replace(str(run_dir), f"{RUNS_DIR}/{name}"))
            continue
        except OSError as exc:
            report(f"{RUNS_DIR}/{name}: cannot be read ({exc.strerror})")
            continue
        first = meta[VARIANTS[0]]
        if first.run_id != name:
            continue  # a directory copied or renamed by hand: its metadata names another run
        runs.append(
            RunSummary(
                run_id=first.run_id,
                created_at=first.created_at,
                seed=first.seed,
                epochs=first.hyperparameters.epochs,
                data_file=first.data.file_name,
                data_sha256=first.data.sha256,
                accuracy={variant: m.metrics.accuracy for variant, m in meta.items()},
                current=current is not None and _resolved(run_dir) == current,
            )
        )
    return runs


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except OSError:
        return None


def prune_runs(model_dir: Path, keep: int = RUNS_KEPT) -> None:
    """Remove leftovers of crashed runs and all but the newest `keep` complete runs (never the current one).

    Call it holding `model_dir_lock` (save_run does): a ``.tmp-`` directory is only a leftover when no
    other writer can be in the middle of it.
    """
    runs_dir = model_dir / RUNS_DIR
    if not runs_dir.is_dir():
        return
    current = current_target(model_dir)
    for stale in runs_dir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale_link in model_dir.glob(f"{TMP_PREFIX}{CURRENT_LINK}-*"):
        stale_link.unlink(missing_ok=True)
    # Run ids start with a UTC timestamp, so name order is age order.
    complete = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in complete[:-keep] if keep > 0 else complete:
        if current is None or old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
