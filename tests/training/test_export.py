"""ONNX export: `python -m training export` writes self-contained graphs that onnxruntime runs to the served answers."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from support.app import app_client
from support.paths import REPO_DIR, SHIPPED_CSV_PATH

from survival.features import FloatArray
from survival.runs import save_run
from training.cli import main
from training.data import load_csv
from training.loop import TrainConfig
from training.run import train_run

MODELS = ("batchnorm", "plain")


def export(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would."""
    cmd = [sys.executable, "-m", "training", "export", *args]
    return subprocess.run(cmd, cwd=REPO_DIR, capture_output=True, text=True, timeout=120, check=False)


def rows_to_check() -> FloatArray:
    """All 891 training passengers (177 without an age) and, for each class, edge rows with a missing fare or age."""
    edges = [[p, fare, np.nan] for p in (1, 2, 3) for fare in (0.0, 7.25, 512.3292, 10_000.0, np.nan)]
    edges += [[p, np.nan, age] for p in (1, 2, 3) for age in (0.42, 30.0)]
    edges += [[p, 30.0, age] for p in (1, 2, 3) for age in (0.42, 80.0, 120.0)]
    return np.vstack([load_csv(SHIPPED_CSV_PATH).raw, np.array(edges)])


def nan_to_none(value: float) -> float | None:
    """JSON's spelling of a missing value."""
    return None if np.isnan(value) else value


def served(model_dir: Path, raw: FloatArray) -> dict[str, FloatArray]:
    """What POST /predict?model=... answers for these rows."""
    rows = [{"pclass": int(p), "fare": nan_to_none(f), "age": nan_to_none(a)} for p, f, a in raw.tolist()]
    out = {}
    with app_client(model_dir) as client:
        for model in MODELS:
            answer = client.post(f"/predict?model={model}", json={"passengers": rows}).json()
            out[model] = np.array([row[model]["survival_probability"] for row in answer["predictions"]])
    return out


def onnx_probabilities(run_dir: Path, raw: FloatArray) -> dict[str, FloatArray]:
    """onnxruntime's answers from the exported files, after checking each file's sha256 against the manifest."""
    manifest = json.loads((run_dir / "onnx.json").read_text())
    out = {}
    for model in MODELS:
        entry = manifest["models"][model]
        data = (run_dir / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        graph = onnx.load_model_from_string(data).graph
        assert "BatchNormalization" not in {node.op_type for node in graph.node}
        # Self-contained: one input, every other value is a stored constant.
        assert [i.name for i in graph.input] == ["features"]
        assert [o.name for o in graph.output] == ["survival_probability"]
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        (probs,) = session.run(["survival_probability"], {"features": raw})
        out[model] = probs
    return out


@pytest.fixture
def models_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's checkpoints that this test may write into."""
    copy = tmp_path / "models"
    shutil.copytree(model_dir, copy, symlinks=True)
    return copy


@pytest.mark.system
def test_export_current_run_equals_the_served_probabilities(models_copy: Path) -> None:
    result = export("--out", str(models_copy))
    assert result.returncode == 0, result.stderr
    run_dir = (models_copy / "current").resolve()
    assert result.stdout.splitlines()[-1] == f"wrote {run_dir / 'onnx.json'}"
    raw = rows_to_check()
    got, want = onnx_probabilities(run_dir, raw), served(models_copy, raw)
    for model in MODELS:
        assert got[model].shape == (raw.shape[0],)
        assert np.abs(got[model] - want[model]).max() <= 1e-6
    manifest = json.loads((run_dir / "onnx.json").read_text())
    assert manifest["run_id"] == run_dir.name
    assert manifest["input"]["columns"] == ["Pclass", "Fare", "Age"]


def test_export_a_named_run_and_refuse_an_unknown_one(models_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In process (the same entry point as `python -m training`): a torch import per subprocess is slow here.
    run_id = (models_copy / "current").resolve().name
    assert main(["export", run_id, "--out", str(models_copy)]) == 0
    assert (models_copy / "runs" / run_id / "batchnorm" / "model.onnx").is_file()
    capsys.readouterr()
    assert main(["export", "20000101T000000Z-nope", "--out", str(models_copy)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {models_copy / 'runs' / '20000101T000000Z-nope'}: no such run"
    ]
    assert main(["export", "../../etc", "--out", str(models_copy)]) == 1
    assert capsys.readouterr().err == "error: '../../etc' is not a run id\n"


def test_export_includes_the_standardization(tmp_path: Path) -> None:
    out = tmp_path / "models"
    result = train_run(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=2, standardize=True))
    save_run(out, result.run_id, result.checkpoint_payload())
    assert main(["export", "--out", str(out)]) == 0
    raw = rows_to_check()
    got, want = onnx_probabilities((out / "current").resolve(), raw), served(out, raw)
    for model in MODELS:
        assert np.abs(got[model] - want[model]).max() <= 1e-6
