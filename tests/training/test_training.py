"""The trainer: identical conditions for both variants, reproducibility, checkpoints and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from support.paths import REPO_DIR, SHIPPED_CSV_PATH

from survival.checkpoint import CURRENT_LINK, RUNS_DIR, CheckpointMetadata, sha256_file
from survival.runs import save_run
from survival.torch_checkpoint import load_pair
from training.data import load_csv
from training.loop import TrainConfig, batch_order
from training.run import train_run

TINY = TrainConfig(epochs=3)


def run_cli(*args: str, cwd: Path = REPO_DIR, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m training ARGS` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "training", "--quiet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_batch_order_is_seeded_and_covers_every_row() -> None:
    a = batch_order(712, 32, torch.Generator().manual_seed(3))
    b = batch_order(712, 32, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert sorted(torch.cat(a).tolist()) == list(range(712))
    assert [len(x) for x in a][-1] == 712 - 22 * 32


def test_batch_order_never_leaves_a_single_row_batch() -> None:
    sizes = [len(b) for b in batch_order(65, 32, torch.Generator().manual_seed(0))]
    assert sizes == [32, 33]


def test_train_same_seed_gives_identical_models_and_metrics() -> None:
    ds = load_csv(SHIPPED_CSV_PATH)
    first, second = train_run(ds, TINY), train_run(ds, TINY)
    for name in ("batchnorm", "plain"):
        a, b = first.variants[name], second.variants[name]
        for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
            assert ka == kb
            assert torch.equal(va, vb)
        assert a.curves == b.curves
        assert a.metrics == b.metrics
    other = train_run(ds, TrainConfig(epochs=3, seed=1))
    assert other.variants["plain"].curves != first.variants["plain"].curves


def test_train_run_records_curves_metrics_and_baseline() -> None:
    result = train_run(load_csv(SHIPPED_CSV_PATH), TINY)
    assert (result.data.n_train, result.data.n_val) == (712, 179)
    assert result.preprocessing.age_fill > 0
    for trained in result.variants.values():
        assert len(trained.curves.val_accuracy) == TINY.epochs
        assert len(trained.curves.train_loss) == TINY.epochs
        m = trained.metrics
        assert m.n == 179
        assert sum(sum(row) for row in m.confusion_matrix) == 179
        assert m.roc_auc is not None
        assert 0 <= m.accuracy <= 1
        # The final metrics are the last epoch's, never a best epoch picked on the validation set.
        assert m.accuracy == pytest.approx(trained.curves.val_accuracy[-1])
    assert result.baseline.majority_class == 0
    assert result.baseline.majority_accuracy == pytest.approx(110 / 179)


def test_checkpoint_roundtrip_predicts_like_the_trained_model(tmp_path: Path) -> None:
    result = train_run(load_csv(SHIPPED_CSV_PATH), TINY)
    save_run(tmp_path, result.run_id, result.checkpoint_payload())
    pair = load_pair(tmp_path)
    x = torch.tensor([[3.0, 7.25, 22.0], [1.0, 71.28, 38.0]])
    for name, ckpt in pair.items():
        assert not ckpt.model.training
        with torch.inference_mode():
            assert torch.equal(ckpt.model(x), result.variants[name].model(x))
        meta = ckpt.metadata
        assert meta.run_id == result.run_id
        assert meta.weights_sha256 == sha256_file(ckpt.path / "model.safetensors")
        assert meta.data.sha256 == sha256_file(SHIPPED_CSV_PATH)
        assert meta.model.batchnorm is (name == "batchnorm")
        assert meta.preprocessing.features == ("Pclass", "Fare", "Age")
        assert set(meta.versions) >= {"torch", "numpy", "scikit-learn"}


def test_save_failure_leaves_previous_run_current_and_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = train_run(load_csv(SHIPPED_CSV_PATH), TINY)
    save_run(tmp_path, result.run_id, result.checkpoint_payload())
    before = os.readlink(tmp_path / CURRENT_LINK)
    calls = 0

    def failing_save(arrays: dict[str, np.ndarray[Any, Any]], path: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the second variant's weights: the first variant is already on disk
            raise OSError("disk full")
        save_file(arrays, path)

    monkeypatch.setattr("survival.runs.save_file", failing_save)
    again = train_run(load_csv(SHIPPED_CSV_PATH), TINY)
    with pytest.raises(OSError, match="disk full"):
        save_run(tmp_path, again.run_id, again.checkpoint_payload())
    assert os.readlink(tmp_path / CURRENT_LINK) == before
    assert sorted(p.name for p in (tmp_path / RUNS_DIR).iterdir()) == [result.run_id]
    assert load_pair(tmp_path)["plain"].metadata.run_id == result.run_id


@pytest.mark.system
def test_cli_trains_both_checkpoints_and_skips_when_present(tmp_path: Path) -> None:
    out = tmp_path / "models"
    done = run_cli("--epochs", "2", "--out", str(out), "--data", str(SHIPPED_CSV_PATH))
    assert done.returncode == 0, done.stderr
    assert "batchnorm" in done.stdout
    assert "plain" in done.stdout
    for name in ("batchnorm", "plain"):
        meta = json.loads((out / CURRENT_LINK / name / "metadata.json").read_text())
        CheckpointMetadata.model_validate(meta)
        assert meta["hyperparameters"]["epochs"] == 2
        assert meta["hyperparameters"]["threads"] == 1
    run_id = os.readlink(out / CURRENT_LINK)
    skipped = run_cli("--if-missing", "--epochs", "2", "--out", str(out), "--data", str(SHIPPED_CSV_PATH))
    assert skipped.returncode == 0, skipped.stderr
    assert "not retraining" in skipped.stdout
    assert os.readlink(out / CURRENT_LINK) == run_id
    forced = run_cli(
        "--if-missing", "--epochs", "2", "--out", str(out), "--data", str(SHIPPED_CSV_PATH), env={"RETRAIN": "1"}
    )
    assert forced.returncode == 0, forced.stderr
    assert os.readlink(out / CURRENT_LINK) != run_id


@pytest.mark.system
def test_cli_bad_data_exits_1_with_one_line_and_keeps_previous_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "models"
    assert run_cli("--epochs", "1", "--out", str(out), "--data", str(SHIPPED_CSV_PATH)).returncode == 0
    run_id = os.readlink(out / CURRENT_LINK)
    bad = tmp_path / "bad.csv"
    bad.write_text(SHIPPED_CSV_PATH.read_text() + "1,5,Late Row,male,30,0,0,7.25,S\n")
    done = run_cli("--epochs", "1", "--out", str(out), "--data", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {bad}: column Pclass, row 892: must be 1, 2 or 3 (got '5')",
    ]
    assert os.readlink(out / CURRENT_LINK) == run_id
    assert load_pair(out)["batchnorm"].metadata.run_id == run_id.rsplit("/", 1)[-1]


@pytest.mark.system
def test_cli_rejects_bad_flags_with_usage_message(tmp_path: Path) -> None:
    done = run_cli("--batch-size", "1", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "--batch-size: must be >= 2" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.system
def test_cli_trains_on_kaggle_train_csv_unchanged(tmp_path: Path, kaggle_train_path: Path) -> None:
    done = run_cli("--epochs", "1", "--out", str(tmp_path / "m"), "--data", str(kaggle_train_path))
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "m" / CURRENT_LINK / "plain" / "metadata.json").read_text())
    assert meta["data"]["file_name"] == "train.csv"
    assert meta["data"]["n_rows"] == 891
