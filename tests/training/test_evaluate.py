"""`python -m training evaluate`: the served pair scored on any labelled CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from support.paths import SHIPPED_CSV_PATH

from survival.torch_checkpoint import load_pair
from training.cli import main
from training.data import load_csv, stratified_split
from training.evaluate import EvaluationReport, evaluate_pair


def _write_rows(path: Path, rows: list[int]) -> Path:
    """A CSV of some of the shipped file's rows, every field written back exactly as read."""
    frame = pd.read_csv(SHIPPED_CSV_PATH, dtype=str, keep_default_na=False)
    frame.iloc[rows].to_csv(path, index=False)
    return path


def test_evaluate_on_the_validation_rows_reproduces_the_checkpoint_metrics(model_dir: Path, tmp_path: Path) -> None:
    pair = load_pair(model_dir)
    seed = pair["plain"].metadata.seed
    _, val_idx = stratified_split(load_csv(SHIPPED_CSV_PATH).labels, seed)
    report = evaluate_pair(pair, load_csv(_write_rows(tmp_path / "val.csv", val_idx.tolist())))
    assert report.data.n_rows == 179
    assert not report.data.is_training_file
    for name, ckpt in pair.items():
        # Same rows, same stored preprocessing, same weights: the metrics the trainer recorded, exactly.
        assert report.models[name] == ckpt.metadata.metrics
    assert report.majority_accuracy == pytest.approx(pair["plain"].metadata.baseline.majority_accuracy)


def test_evaluate_flags_the_training_file(model_dir: Path) -> None:
    report = evaluate_pair(load_pair(model_dir), load_csv(SHIPPED_CSV_PATH))
    assert report.data.is_training_file
    assert report.data.n_training_rows == 712
    assert report.data.n_rows == 891
    assert report.models["batchnorm"].n == 891


def test_cli_evaluate_prints_a_table_or_json(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_rows(tmp_path / "some.csv", list(range(0, 891, 3)))
    assert main(["evaluate", "--data", str(data), "--models", str(model_dir)]) == 0
    table = capsys.readouterr().out
    assert "batchnorm" in table
    assert "plain" in table
    assert "297 rows" in table
    assert "optimistic" not in table
    assert main(["evaluate", "--data", str(data), "--models", str(model_dir), "--json"]) == 0
    report = EvaluationReport.model_validate(json.loads(capsys.readouterr().out))
    assert report.data.file_name == "some.csv"
    assert set(report.models) == {"batchnorm", "plain"}
    assert main(["evaluate", "--data", str(SHIPPED_CSV_PATH), "--models", str(model_dir)]) == 0
    assert "optimistic" in capsys.readouterr().out


def test_cli_evaluate_bad_data_or_models_exit_1_with_one_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Survived,Pclass,Fare,Age\n1,1,7.25,\n0,4,7.25,30\n")
    assert main(["evaluate", "--data", str(bad), "--models", str(model_dir)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {bad}: column Pclass, row 2: must be 1, 2 or 3 (got '4')"
    ]
    missing = tmp_path / "nothing"
    assert main(["evaluate", "--data", str(SHIPPED_CSV_PATH), "--models", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {missing}: model directory is missing")


def test_cli_evaluate_requires_data(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate"])
    assert exit_info.value.code == 2
    assert "--data" in capsys.readouterr().err
