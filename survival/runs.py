"""The model directory on disk: write a run atomically, point ``current`` at it, prune old runs.

A run is written under ``runs/.tmp-<run_id>`` and only renamed and linked once every variant and
every artifact is on disk, so a crash or bad input never leaves a half-written or mixed pair
behind ``current`` and never touches the previous good run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
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
    sha256_file,
)
from survival.variants import VariantName

# Keep the current run and the two before it, so an operator can roll back (`python -m training promote`).
RUNS_KEPT: Final[int] = 3

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


def save_run(
    model_dir: Path, run_id: str, variants: Mapping[VariantName, VariantPayload], *, keep: int = RUNS_KEPT
) -> Path:
    """Write every variant of a run atomically, point ``current`` at it and prune; returns the run directory."""
    for payload in variants.values():
        for name in payload.artifacts:
            check_artifact_name(name)
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


def prune_runs(model_dir: Path, keep: int = RUNS_KEPT) -> None:
    """Remove leftovers of crashed runs and all but the newest `keep` complete runs (never the current one)."""
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
