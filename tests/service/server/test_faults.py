"""Checkpoint faults: each is refused with one clear error naming the file, and the server exits without a traceback.

Also the writer's side: a trainer that fails or is killed mid-write never disturbs the run behind ``current``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from safetensors.torch import save_file
from support.paths import REPO_DIR, SHIPPED_CSV_PATH
from support.runs import copy_models, current_id, payload_of

from survival.checkpoint import (
    CURRENT_LINK,
    METADATA_FILE,
    RUNS_DIR,
    SERVED_FILE,
    TMP_PREFIX,
    WEIGHTS_FILE,
    CheckpointError,
    sha256_file,
)
from survival.model import VARIANTS, VariantName
from survival.runs import save_run
from survival.served import load_served_current
from survival.torch_checkpoint import load_checkpoint, load_pair
from training.cli import main as trainer_main

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

# Run ids sort by time; these come after any run the session fixture made.
RUN_B: Final = "20990101T000000000000Z-bbbbbb"
RUN_C: Final = "20990102T000000000000Z-cccccc"
SERVER_TIMEOUT_S: Final = 120


def variant_dir(model_dir: Path, name: VariantName) -> Path:
    """The directory of one variant of the current run."""
    return model_dir / CURRENT_LINK / name


def set_metadata(model_dir: Path, name: VariantName, **changes: Any) -> None:
    """Rewrite fields of a variant's metadata.json."""
    path = variant_dir(model_dir, name) / METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}), encoding="utf-8")


@dataclass(frozen=True)
class FileKind:
    """One of a variant's two safetensors files, and the loader that reads it."""

    id: str
    file: str
    what: str  # how the loader's messages call it
    sha_field: str
    shapes_field: str
    load: Callable[[Path], object]  # loads a model directory's current pair
    first_layer: str
    # A valid file whose first layer reads 4 features (the metadata says 3).
    write_four_features: Callable[[Path], dict[str, list[int]]]


def four_feature_weights(path: Path) -> dict[str, list[int]]:
    """Rewrite the training weights with a 4-feature first layer; returns the new shapes."""
    state = safetensors.torch.load_file(str(path))
    state["net.0.weight"] = torch.zeros(16, 4)
    save_file(state, str(path))
    return {k: list(v.shape) for k, v in state.items()}


def four_feature_served(path: Path) -> dict[str, list[int]]:
    """Rewrite the served layers with a 4-feature first layer; returns the new shapes."""
    arrays = safetensors.numpy.load_file(str(path))
    arrays["layers.0.weight"] = np.zeros((4, 16))
    safetensors.numpy.save_file(arrays, str(path))
    return {k: list(v.shape) for k, v in arrays.items()}


WEIGHTS: Final = FileKind(
    "weights", WEIGHTS_FILE, "weights", "weights_sha256", "tensors", load_pair, "net.0.weight", four_feature_weights
)
SERVED: Final = FileKind(
    "served",
    SERVED_FILE,
    "served",
    "served_sha256",
    "served_tensors",
    lambda models: load_served_current(models)[1],
    "layers.0.weight",
    four_feature_served,
)
KINDS: Final = [WEIGHTS, SERVED]
# What the service loads (the served form) and what the trainer loads (the weights) refuse the same faults.
by_kind = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)


def match_sha(model_dir: Path, name: VariantName, kind: FileKind) -> None:
    """Make the metadata's sha256 match whatever the file now holds (so later checks must fire)."""
    set_metadata(model_dir, name, **{kind.sha_field: sha256_file(variant_dir(model_dir, name) / kind.file)})


class _Touch:
    """A pickle payload: unpickling it creates `marker` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def plant_pickle(model_dir: Path, name: VariantName, marker: Path, kind: FileKind) -> None:
    """Replace a variant's file with a pickle that would create `marker` if loaded with pickle or torch.load."""
    torch.save({"state_dict": _Touch(marker)}, variant_dir(model_dir, name) / kind.file)
    match_sha(model_dir, name, kind)


# --- faults in the checkpoint directory -------------------------------------------------------------------------


def break_missing_dir(models: Path, tmp: Path) -> Path:
    """The model directory does not exist."""
    return tmp / "no-such-dir"


def break_truncated(models: Path, tmp: Path, kind: FileKind = SERVED) -> Path:
    """The batchnorm file is cut in half."""
    path = variant_dir(models, "batchnorm") / kind.file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return models


def break_pickle(models: Path, tmp: Path) -> Path:
    """A torch pickle planted where the plain served form belongs."""
    plant_pickle(models, "plain", tmp / "PWNED-by-server", SERVED)
    return models


def break_mixed_pair(models: Path, tmp: Path) -> Path:
    """plain copied in from another training run."""
    other = copy_models(models, tmp / "other-run")
    save_run(other, RUN_B, payload_of(other, RUN_B, shift=0.5))
    shutil.rmtree(variant_dir(models, "plain"))
    shutil.copytree(other / RUNS_DIR / RUN_B / "plain", (models / CURRENT_LINK).resolve() / "plain")
    return models


def break_old_format(models: Path, tmp: Path) -> Path:
    """A run written before the served form existed: format 1, no served file or fields."""
    for name in VARIANTS:
        (variant_dir(models, name) / SERVED_FILE).unlink()
        path = variant_dir(models, name) / METADATA_FILE
        meta = json.loads(path.read_text())
        for key in ("served_tensors", "served_sha256", "artifacts"):
            del meta[key]
        path.write_text(json.dumps({**meta, "format_version": 1}), encoding="utf-8")
    return models


@dataclass(frozen=True)
class Fault:
    """A broken model directory, and what the error must say about it."""

    id: str
    breaks: Callable[[Path, Path], Path]
    file: str  # the path (relative to the tmp dir) the message must name
    problem: str


FAULTS: Final = [
    Fault("missing-dir", break_missing_dir, "no-such-dir", "model directory is missing"),
    Fault("truncated-served", break_truncated, f"batchnorm/{SERVED_FILE}", "does not match the metadata's"),
    Fault("pickle-payload", break_pickle, f"plain/{SERVED_FILE}", "not a readable safetensors file"),
    Fault("mixed-pair", break_mixed_pair, "models/runs/", "different training runs"),
    Fault("old-format", break_old_format, "/batchnorm", "written before the served form existed"),
]


@pytest.mark.parametrize("load", [load_pair, load_served_current])
def test_missing_model_dir(tmp_path: Path, load: Callable[[Path], object]) -> None:
    with pytest.raises(CheckpointError, match=r"no-such-dir: model directory is missing \(train first"):
        load(tmp_path / "no-such-dir")


@pytest.mark.parametrize("load", [load_pair, load_served_current])
def test_empty_model_dir_has_no_current_run(tmp_path: Path, load: Callable[[Path], object]) -> None:
    with pytest.raises(CheckpointError, match=rf"{CURRENT_LINK}: no current run \(train first"):
        load(tmp_path)


@by_kind
@pytest.mark.parametrize("name", VARIANTS)
def test_one_model_missing(model_dir: Path, tmp_path: Path, name: VariantName, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    shutil.rmtree(variant_dir(models, name))
    with pytest.raises(CheckpointError, match=rf"{current_id(models)}/{name}: checkpoint directory is missing"):
        kind.load(models)


@by_kind
def test_file_missing(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    (variant_dir(models, "plain") / kind.file).unlink()
    with pytest.raises(CheckpointError, match=rf"plain/{kind.file}: {kind.what} file is missing"):
        kind.load(models)


@by_kind
def test_truncated_file_fails_the_hash_check(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    break_truncated(models, tmp_path, kind)
    with pytest.raises(CheckpointError, match=rf"batchnorm/{kind.file}: sha256 \w+ does not match .*\(truncated"):
        kind.load(models)


@by_kind
def test_truncated_file_with_a_matching_hash_fails_to_parse(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    break_truncated(models, tmp_path, kind)
    match_sha(models, "batchnorm", kind)
    with pytest.raises(CheckpointError, match=rf"batchnorm/{kind.file}: not a readable safetensors file"):
        kind.load(models)


@by_kind
def test_other_shapes_fail_the_shape_check(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    kind.write_four_features(variant_dir(models, "plain") / kind.file)
    match_sha(models, "plain", kind)  # a valid file with a matching hash: only the shape check can catch it
    first = re.escape(kind.first_layer)
    with pytest.raises(
        CheckpointError, match=rf"tensor shapes .*'{first}': \[(16, 4|4, 16)\].* do not match the metadata"
    ):
        kind.load(models)


@by_kind
def test_file_and_metadata_shapes_agreeing_but_not_the_architecture(
    model_dir: Path, tmp_path: Path, kind: FileKind
) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    path = variant_dir(models, "plain") / kind.file
    shapes = kind.write_four_features(path)
    set_metadata(models, "plain", **{kind.shapes_field: shapes, kind.sha_field: sha256_file(path)})
    with pytest.raises(CheckpointError, match=rf"plain/{kind.file}: tensors .* do not fit the architecture"):
        kind.load(models)


def test_served_form_in_float32_is_refused(model_dir: Path, tmp_path: Path) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    path = variant_dir(models, "plain") / SERVED_FILE
    arrays = {k: v.astype(np.float32) for k, v in safetensors.numpy.load_file(str(path)).items()}
    safetensors.numpy.save_file(arrays, str(path))
    match_sha(models, "plain", SERVED)
    with pytest.raises(
        CheckpointError, match=rf"plain/{SERVED_FILE}: tensors \[.*'layers.0.weight'.*\] are not float64"
    ):
        load_served_current(models)


@by_kind
def test_metadata_not_valid_json(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    meta = variant_dir(models, "batchnorm") / METADATA_FILE
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=rf"batchnorm/{METADATA_FILE}: not valid JSON"):
        kind.load(models)


@by_kind
def test_metadata_missing_a_field(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    meta = variant_dir(models, "plain") / METADATA_FILE
    data = json.loads(meta.read_text())
    del data["preprocessing"]
    meta.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=rf"plain/{METADATA_FILE}: field preprocessing: Field required"):
        kind.load(models)


@by_kind
def test_metadata_with_another_feature_list(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    meta = variant_dir(models, "plain") / METADATA_FILE
    data = json.loads(meta.read_text())
    data["preprocessing"]["features"] = ["Pclass", "Fare", "Sex"]
    meta.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"feature list \['Pclass', 'Fare', 'Sex'\].* does not match"):
        kind.load(models)


@by_kind
def test_the_pickle_payload_is_live_but_never_executed(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    # The payload really runs code when unpickled: torch.load without weights_only would create the marker.
    probe = tmp_path / "probe.pt"
    torch.save({"state_dict": _Touch(tmp_path / "PWNED-probe")}, probe)
    torch.load(probe, weights_only=False)
    assert (tmp_path / "PWNED-probe").exists()
    # Planted as a checkpoint (hash matching, so the loader reaches the file), it is refused without running.
    models = copy_models(model_dir, tmp_path / "models")
    marker = tmp_path / "PWNED"
    plant_pickle(models, "plain", marker, kind)
    with pytest.raises(CheckpointError, match=rf"plain/{kind.file}: not a readable safetensors file"):
        kind.load(models)
    assert not marker.exists()


@by_kind
def test_a_raw_pickle_is_refused(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    marker = tmp_path / "PWNED"
    (variant_dir(models, "batchnorm") / kind.file).write_bytes(pickle.dumps(_Touch(marker)))
    match_sha(models, "batchnorm", kind)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        kind.load(models)
    assert not marker.exists()


@by_kind
def test_mixed_pair_from_two_runs_is_refused_naming_both(model_dir: Path, tmp_path: Path, kind: FileKind) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    run_a = current_id(models)
    break_mixed_pair(models, tmp_path)
    with pytest.raises(CheckpointError, match="different training runs") as error:
        kind.load(models)
    assert run_a in str(error.value)
    assert RUN_B in str(error.value)


def test_a_run_without_the_served_form_is_refused_with_how_to_retrain(model_dir: Path, tmp_path: Path) -> None:
    models = break_old_format(copy_models(model_dir, tmp_path / "models"), tmp_path)
    with pytest.raises(CheckpointError) as error:
        load_served_current(models)
    assert str(error.value) == (
        f"{(models / CURRENT_LINK).resolve() / 'batchnorm'}: written before the served form existed (format 1, no "
        f"{SERVED_FILE}); retrain: python -m training"
    )


def test_artifacts_are_written_with_the_run_and_verified_at_load(model_dir: Path, tmp_path: Path) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    payload = payload_of(models, RUN_B)
    payload["plain"] = dataclasses.replace(payload["plain"], artifacts={"reference.json": b'{"n": 3}'})
    save_run(models, RUN_B, payload)
    served = load_served_current(models)[1]
    assert served["plain"].artifacts == {"reference.json": b'{"n": 3}'}
    assert served["batchnorm"].artifacts == {}
    (variant_dir(models, "plain") / "reference.json").write_bytes(b'{"n": 4}')
    with pytest.raises(CheckpointError, match=r"plain/reference.json: sha256 \w+ does not match"):
        load_served_current(models)
    (variant_dir(models, "plain") / "reference.json").unlink()
    with pytest.raises(CheckpointError, match=r"plain/reference.json: artifact file is missing"):
        load_served_current(models)


@pytest.mark.parametrize("name", ["../x", "", "metadata.json", "served.safetensors", ".hidden", "a/b"])
def test_an_artifact_name_that_is_not_a_plain_new_file_is_refused_before_writing(
    model_dir: Path, tmp_path: Path, name: str
) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    payload = payload_of(models, RUN_B)
    payload["plain"] = dataclasses.replace(payload["plain"], artifacts={name: b"x"})
    with pytest.raises(ValueError, match="must be a plain file name"):
        save_run(models, RUN_B, payload)
    assert not (models / RUNS_DIR / RUN_B).exists()


# --- the real server process exits with one line ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerExit:
    """How `uvicorn service.main:app` ended on a broken model directory."""

    returncode: int
    stderr: str
    tmp: Path


@pytest.fixture(scope="module")
def server_exits(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServerExit]:
    """Start one real server per fault, all at once (each spends seconds importing torch), and collect their ends."""
    started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for fault in FAULTS:
        tmp = tmp_path_factory.mktemp(fault.id)
        bad = fault.breaks(copy_models(model_dir, tmp / "models"), tmp)
        env = {**os.environ, "MODEL_DIR": str(bad)}
        command = [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port", "0"]
        process = subprocess.Popen(
            command, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started[fault.id] = (process, tmp)
    exits = {}
    for fault_id, (process, tmp) in started.items():
        try:
            _, stderr = process.communicate(timeout=SERVER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        exits[fault_id] = ServerExit(process.returncode, stderr, tmp)
    return exits


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_server_exits_with_one_clear_line(server_exits: dict[str, ServerExit], fault: Fault) -> None:
    end = server_exits[fault.id]
    assert end.returncode == 1, end.stderr
    assert "Traceback" not in end.stderr
    # uvicorn's own INFO lines may come first; the error is exactly one other line.
    lines = [line for line in end.stderr.splitlines() if line.strip() and not line.startswith("INFO:")]
    assert len(lines) == 1, end.stderr
    assert lines[0].startswith("error: cannot load the models: ")
    assert f"{end.tmp}/" in lines[0]
    assert fault.file in lines[0]
    assert fault.problem in lines[0]
    assert not (end.tmp / "PWNED-by-server").exists()


# --- the writer: failures and kills never touch the current run ----------------------------------------------------


def assert_current_is(models: Path, run_id: str) -> None:
    """`current` points at `run_id`, and that pair loads."""
    assert current_id(models) == run_id
    assert {c.metadata.run_id for c in load_pair(models).values()} == {run_id}


def leftovers(models: Path) -> list[str]:
    """Temporary run directories and link files a crashed save left behind."""
    return sorted(p.name for p in [*(models / RUNS_DIR).glob(f"{TMP_PREFIX}*"), *models.glob(f"{TMP_PREFIX}*")])


def test_trainer_stops_on_a_bad_last_row_and_keeps_the_current_run(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    run_a = current_id(models)
    with SHIPPED_CSV_PATH.open(encoding="utf-8", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    rows[-1][header.index("Pclass")] = "7"  # valid everywhere except the very last row
    bad_csv = tmp_path / "late-bad-row.csv"
    with bad_csv.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    before = sorted(p.name for p in (models / RUNS_DIR).iterdir())

    code = trainer_main(["--data", str(bad_csv), "--out", str(models), "--epochs", "1", "--quiet"])

    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"late-bad-row.csv: column Pclass, row {len(rows)}" in err
    assert "Traceback" not in err
    assert_current_is(models, run_a)
    assert sorted(p.name for p in (models / RUNS_DIR).iterdir()) == before


def test_a_write_error_midway_removes_the_partial_run(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    run_a = current_id(models)
    payload = payload_of(models, RUN_B)
    writes: list[str] = []

    def disk_full_on_second_variant(arrays: dict[str, np.ndarray[Any, Any]], path: str) -> None:
        """safetensors' writer, failing like a full disk once the first variant (weights + served) is on disk."""
        writes.append(path)
        if len(writes) == 3:
            raise OSError(28, "No space left on device")
        safetensors.numpy.save_file(arrays, path)

    monkeypatch.setattr("survival.runs.save_file", disk_full_on_second_variant)
    with pytest.raises(OSError, match="No space left"):
        save_run(models, RUN_B, payload)
    assert len(writes) == 3
    assert leftovers(models) == []
    assert not (models / RUNS_DIR / RUN_B).exists()
    assert_current_is(models, run_a)


# Runs save_run in a real process that SIGKILLs itself at a chosen point of the write.
KILL_SCRIPT: Final = """
import os, signal, sys
from pathlib import Path
import torch
import survival.runs as ck
from survival.torch_checkpoint import load_pair
from training.fold import variant_payload

models, run_id, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
generated = {"tensors", "weights_sha256", "served_tensors", "served_sha256", "artifacts"}
payload = {}
for name, c in load_pair(models).items():
    with torch.no_grad():
        for p in c.model.parameters():
            p += 0.25
    payload[name] = variant_payload(c.model, {**c.metadata.model_dump(exclude=generated), "run_id": run_id})
real_save, real_replace = ck.save_file, os.replace
saves = []

def save_file(state, path):
    real_save(state, path)
    saves.append(path)
    if point == f"after-weights-{len(saves)}":
        os.kill(os.getpid(), signal.SIGKILL)

def replace(src, dst):
    real_replace(src, dst)
    if point == "after-rename" and Path(dst).name == run_id:
        os.kill(os.getpid(), signal.SIGKILL)

ck.save_file, ck.os.replace = save_file, replace
ck.save_run(models, run_id, payload)
print("not killed")
"""
KILL_POINTS: Final = ("after-weights-1", "after-rename")


@pytest.fixture(scope="module")
def killed_saves(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One model directory per kill point, each holding what a save killed at that point left behind."""
    started = {}
    for point in KILL_POINTS:
        models = copy_models(model_dir, tmp_path_factory.mktemp(point) / "models")
        argv = [sys.executable, "-c", KILL_SCRIPT, str(models), RUN_B, point]
        started[point] = (subprocess.Popen(argv, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE), models)
    results = {}
    for point, (process, models) in started.items():
        out, err = process.communicate(timeout=SERVER_TIMEOUT_S)
        assert process.returncode == -signal.SIGKILL, (point, out, err)
        results[point] = models
    return results


@pytest.mark.parametrize("point", KILL_POINTS)
def test_trainer_killed_during_the_write_leaves_current_intact(
    model_dir: Path, killed_saves: dict[str, Path], point: str
) -> None:
    models = killed_saves[point]
    run_a = current_id(model_dir)
    assert_current_is(models, run_a)
    if point == "after-rename":
        # Both variants were complete and renamed; only the link swap was lost. Nothing partial exists.
        assert leftovers(models) == []
        assert {load_checkpoint(models / RUNS_DIR / RUN_B / name).metadata.run_id for name in VARIANTS} == {RUN_B}
    else:
        assert leftovers(models) == [f"{TMP_PREFIX}{RUN_B}"]
        assert not (models / RUNS_DIR / RUN_B).exists()
    # The next save cleans up what the killed one left, and becomes current.
    save_run(models, RUN_C, payload_of(models, RUN_C))
    assert leftovers(models) == []
    assert_current_is(models, RUN_C)
