"""The multi-seed study: the batched path against the single-run trainer, the statistics, the file and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_DIR, SHIPPED_CSV_PATH
from scipy import stats as sps

from survival.study import (
    STUDY_FILE,
    PairedComparison,
    StudyData,
    StudyReport,
    SweepCell,
    Timings,
    VariantSummary,
    load_study,
)
from training.batched import CURVE_NAMES, BatchedNet, BatchedResult, ModelKey, train_batched
from training.cli import main
from training.data import Dataset, load_csv
from training.loop import OptimizerName, TrainConfig, train_variant
from training.study import SWEEP_GRID, prepare_seeds, run_study, sweep_cells, write_study
from training.study_stats import finding, paired, stat, t_interval, verdict

# Seeds 1 and 4 but not 0..N-1: the stack must map each model to its own seed's split and generator.
SEEDS = (0, 1, 4)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, as the CLI uses: at this size a second thread only adds synchronisation (and on a busy
    machine a lot of it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """The shipped Titanic CSV, loaded once."""
    return load_csv(SHIPPED_CSV_PATH)


@pytest.mark.parametrize(
    ("optimizer", "lr", "epochs", "seeds"),
    [("adam", 1e-3, 15, SEEDS), ("sgd", 0.1, 4, SEEDS), ("adam", 1e-3, 4, (0,))],
)
def test_batched_matches_single_run_trainer_in_float64(
    dataset: Dataset, optimizer: OptimizerName, lr: float, epochs: int, seeds: tuple[int, ...]
) -> None:
    # A single seed is its own case: with one batchnorm model the stacked reshapes become views.
    config = TrainConfig(epochs=epochs, optimizer=optimizer, learning_rate=lr, dtype=torch.float64)
    data, _ = prepare_seeds(dataset, seeds, config)
    # Plain listed first: the stack reorders its models (batchnorm first) and must still find each one.
    result = train_batched(data, ("plain", "batchnorm"), config)
    for i, seed in enumerate(seeds):
        x_train, y_train = data.x_train[i].double(), data.y_train[i].double()
        x_val, y_val = data.x_val[i].double(), data.y_val[i].double()
        for variant in ("batchnorm", "plain"):
            model, curves = train_variant(variant, x_train, y_train, x_val, y_val, replace(config, seed=seed))
            m = result.index(variant, seed)
            batched = result.model_curves(m)
            for name in CURVE_NAMES:
                expected, actual = np.array(getattr(curves, name)), np.array(getattr(batched, name))
                assert actual.shape == (epochs,)
                np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6, err_msg=f"{variant} {seed} {name}")
            mine, theirs = result.net.to_module(m).state_dict(), model.state_dict()
            assert mine.keys() == theirs.keys()
            for key, value in theirs.items():
                torch.testing.assert_close(mine[key], value, rtol=0, atol=1e-6, msg=f"{variant} {seed} {key}")
            with torch.no_grad():
                logits = model(x_val)
            torch.testing.assert_close(result.val_logits[m], logits, rtol=0, atol=1e-6)
    # The seeds are really different runs (a stack that trained one seed three times would fail above too).
    if len(seeds) > 1:
        assert result.model_curves(result.index("plain", 0)) != result.model_curves(result.index("plain", 4))


def test_stat_is_mean_and_sample_std() -> None:
    values = [0.7, 0.72, 0.69, 0.75]
    s = stat(values)
    assert s.mean == pytest.approx(np.mean(values))
    assert s.std == pytest.approx(np.std(values, ddof=1))
    assert s.values == values
    assert stat([0.5]).std == 0.0


def test_t_interval_agrees_with_scipy_one_sample_t_test() -> None:
    diffs = [0.011, 0.028, -0.006, 0.034, 0.017, 0.0, 0.022]
    low, high = t_interval(diffs)
    expected = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert low < float(np.mean(diffs)) < high
    assert t_interval([0.02, 0.02, 0.02]) == pytest.approx((0.02, 0.02))
    with pytest.raises(ValueError, match="two seeds"):
        t_interval([0.1])


def test_paired_counts_and_direction() -> None:
    bn, plain = [0.70, 0.72, 0.69, 0.71], [0.68, 0.72, 0.70, 0.66]
    acc = paired("accuracy", bn, plain, higher_is_better=True)
    assert acc.mean_diff == pytest.approx(np.mean(bn) - np.mean(plain))
    assert (acc.ahead, acc.tied, acc.behind) == (2, 1, 1)
    assert acc.ahead + acc.tied + acc.behind == len(bn)
    assert acc.ci95[0] <= acc.mean_diff <= acc.ci95[1]
    # For a loss, lower is better: the same numbers read the other way round.
    loss = paired("log_loss", bn, plain, higher_is_better=False)
    assert (loss.ahead, loss.tied, loss.behind) == (1, 1, 2)
    with pytest.raises(ValueError, match="accuracy"):
        paired("accuracy", bn, plain[:3], higher_is_better=True)


def _comparison(low: float, high: float, higher_is_better: bool = True) -> PairedComparison:
    return PairedComparison(
        metric="accuracy",
        mean_diff=(low + high) / 2,
        ci95=(low, high),
        method="t",
        ahead=1,
        tied=0,
        behind=1,
        higher_is_better=higher_is_better,
    )


def test_finding_reads_the_interval() -> None:
    assert finding(_comparison(0.01, 0.03)) == "better"
    assert finding(_comparison(-0.03, -0.01)) == "worse"
    assert finding(_comparison(-0.01, 0.03)) == "unclear"
    assert finding(_comparison(-0.03, -0.01, higher_is_better=False)) == "better"


def test_run_study_report_is_consistent(dataset: Dataset) -> None:
    config = TrainConfig(epochs=3)
    report = run_study(dataset, [0, 1, 2], config, sweep=True)
    assert report.seeds == [0, 1, 2]
    assert (report.data.n_train, report.data.n_val) == (712, 179)
    assert report.data.sha256 == dataset.sha256
    assert report.stability_window == 3
    for summary in report.variants.values():
        for s in (summary.accuracy, summary.log_loss, summary.roc_auc, summary.best_minus_final):
            assert len(s.values) == 3
        # The best epoch can only be at or above the final one.
        assert min(summary.best_minus_final.values) >= 0
    assert [p.metric for p in report.paired] == ["accuracy", "log_loss", "roc_auc"]
    for p in report.paired:
        assert p.ahead + p.tied + p.behind == 3
        assert p.ci95[0] <= p.mean_diff <= p.ci95[1]
    acc = report.paired[0]
    bn, plain = report.variants["batchnorm"].accuracy, report.variants["plain"].accuracy
    assert acc.mean_diff == pytest.approx(bn.mean - plain.mean)
    assert report.sweep is not None
    assert len(report.sweep) == 2 * sum(len(rates) for _, rates in SWEEP_GRID)
    assert all(0 <= c.collapsed <= c.runs == 3 for c in report.sweep)
    default = {c.variant: c for c in report.sweep if (c.optimizer, c.learning_rate) == ("adam", 1e-3)}
    assert default["plain"].accuracy.values == pytest.approx(plain.values)
    assert report.timings_s.sweep is not None
    assert report.verdict == verdict(report)
    assert "Higher final accuracy with BN" in report.verdict


def test_sweep_cells_count_collapsed_and_diverged_runs() -> None:
    keys: list[ModelKey] = [("batchnorm", 0), ("batchnorm", 1), ("plain", 0), ("plain", 1)]
    net = BatchedNet(keys, (16, 8), 3, torch.float32, "cpu")
    nan = float("nan")
    logits = {
        ("batchnorm", 0): [1.0, -1.0, 0.5],  # predicts both classes
        ("batchnorm", 1): [1.0, 2.0, 0.0],  # always survived (0 counts as survived, as in the trainer)
        ("plain", 0): [nan, nan, nan],  # diverged
        ("plain", 1): [-1.0, -2.0, -0.1],  # never survived
    }
    curves = torch.zeros(4, 4, 2, dtype=torch.float64)
    curves[3, :, -1] = 0.6 + 0.01 * torch.arange(4)
    curves[0, net.keys.index(("plain", 0)), -1] = nan
    result = BatchedResult(
        keys=net.keys, curves=curves, val_logits=torch.tensor([logits[k] for k in net.keys]), net=net
    )
    cells = {c.variant: c for c in sweep_cells(result, TrainConfig(optimizer="sgd", learning_rate=0.5), [0, 1])}
    assert (cells["batchnorm"].collapsed, cells["batchnorm"].diverged, cells["batchnorm"].runs) == (1, 0, 2)
    assert (cells["plain"].collapsed, cells["plain"].diverged) == (2, 1)
    assert cells["plain"].accuracy.values == pytest.approx([0.62, 0.63])
    assert (cells["plain"].optimizer, cells["plain"].learning_rate) == ("sgd", 0.5)


def _summary(accuracy: list[float]) -> VariantSummary:
    n = len(accuracy)
    return VariantSummary(
        accuracy=stat(accuracy),
        log_loss=stat([0.6] * n),
        roc_auc=stat([0.75] * n),
        stability_last50=stat([0.01] * n),
        best_epoch_accuracy=stat([a + 0.02 for a in accuracy]),
        best_minus_final=stat([0.02] * n),
    )


def _report(bn_acc: list[float], plain_acc: list[float], sweep: list[SweepCell] | None = None) -> StudyReport:
    """A study report with the given final accuracies (other figures equal for both variants)."""
    n = len(bn_acc)
    return StudyReport(
        created_at="2026-01-01T00:00:00+00:00",
        data=StudyData(file_name="titanic.csv", sha256="0" * 64),
        seeds=list(range(n)),
        epochs=200,
        learning_rate=1e-3,
        batch_size=32,
        device="cpu",
        timings_s=Timings(study=1.0),
        variants={"batchnorm": _summary(bn_acc), "plain": _summary(plain_acc)},
        paired=[
            paired("accuracy", bn_acc, plain_acc, higher_is_better=True),
            paired("log_loss", [0.6] * n, [0.6] * n, higher_is_better=False),
            paired("roc_auc", [0.75] * n, [0.75] * n, higher_is_better=True),
        ],
        paired_stability=paired("stability_last50", [0.01] * n, [0.01] * n, higher_is_better=False),
        sweep=sweep,
        verdict="",
    )


def _cells(optimizer: str, lr: float, bn: list[float], plain: list[float], plain_collapsed: int) -> list[SweepCell]:
    return [
        SweepCell.model_validate(
            {"optimizer": optimizer, "learning_rate": lr, "variant": v, "accuracy": stat(a).model_dump()}
            | {"collapsed": c, "runs": len(a)}
        )
        for v, a, c in (("batchnorm", bn, 0), ("plain", plain, plain_collapsed))
    ]


def test_verdict_follows_the_numbers() -> None:
    better = verdict(_report([0.72, 0.73, 0.71, 0.74], [0.69, 0.70, 0.69, 0.70]))
    assert "Higher final accuracy with BN held" in better
    assert "72.5 %" in better
    assert "not tested" in better
    unclear = verdict(_report([0.72, 0.68, 0.71, 0.69], [0.69, 0.70, 0.70, 0.70]))
    assert "Higher final accuracy with BN not shown" in unclear
    worse = verdict(_report([0.66, 0.67, 0.66, 0.68], [0.69, 0.70, 0.69, 0.70]))
    assert "Higher final accuracy with BN did not hold" in worse
    sweep = _cells("adam", 1e-3, [0.7] * 4, [0.7] * 4, 0) + _cells(
        "adam", 5e-2, [0.71, 0.72, 0.70, 0.71], [0.62, 0.61, 0.63, 0.62], 3
    )
    tolerant = verdict(_report([0.7] * 4, [0.7] * 4, sweep))
    assert "Tolerance of higher learning rates held" in tolerant
    assert "significantly higher at adam 0.05 and significantly lower at none" in tolerant
    assert "0 of 4 BN runs and 3 of 4 plain runs collapsed" in tolerant
    for text in (better, unclear, worse, tolerant):
        assert "optimistic" in text


def test_write_study_is_atomic_and_loads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report([0.7, 0.71], [0.69, 0.7])
    path = write_study(report, tmp_path / "models")
    assert path == tmp_path / "models" / STUDY_FILE
    assert load_study(path) == report
    newer = report.model_copy(update={"verdict": "newer"})

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_study(newer, tmp_path / "models")
    assert load_study(path) == report
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [STUDY_FILE]


def test_load_study_absent_is_none_and_invalid_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / STUDY_FILE
    assert load_study(path) is None
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{path}: the study results are not valid JSON"):
        load_study(path)
    good = json.loads(_report([0.7, 0.71], [0.69, 0.7]).model_dump_json())
    del good["verdict"]
    path.write_text(json.dumps(good))
    with pytest.raises(ValueError, match=f"{path}: invalid study results: field verdict"):
        load_study(path)


def test_cli_study_writes_a_valid_report(tmp_path: Path) -> None:
    out = tmp_path / "models"
    args = ["study", "--seeds", "2", "--epochs", "2", "--sweep", "--quiet", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "training", *args, "--data", str(SHIPPED_CSV_PATH)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = load_study(out / STUDY_FILE)
    assert report is not None
    assert report.seeds == [0, 1]
    assert report.epochs == 2
    assert report.sweep is not None
    assert report.verdict in " ".join(done.stdout.split())
    assert f"wrote {out / STUDY_FILE}" in done.stdout


@pytest.mark.parametrize("seeds", ["0", "1", "two"])
def test_cli_study_rejects_too_few_seeds(seeds: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--seeds", seeds, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err
    assert not (tmp_path / STUDY_FILE).exists()


def test_cli_study_bad_data_exits_1_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(SHIPPED_CSV_PATH.read_text() + "1,5,Late Row,male,30,0,0,7.25,S\n")
    assert main(["study", "--seeds", "2", "--epochs", "1", "--quiet", "--data", str(bad), "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {bad}: column Pclass, row 892: must be 1, 2 or 3 (got '5')",
    ]
    assert not (tmp_path / STUDY_FILE).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cli_study_cuda_without_a_gpu_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "--seeds", "2", "--epochs", "1", "--quiet", "--device", "cuda", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --device cuda: no CUDA GPU is available to torch on this machine"
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_batched_on_cuda_matches_cpu_in_float64(dataset: Dataset) -> None:
    config = TrainConfig(epochs=5, dtype=torch.float64)
    data, _ = prepare_seeds(dataset, SEEDS, config)
    cpu = train_batched(data, ("batchnorm", "plain"), config)
    gpu = train_batched(data, ("batchnorm", "plain"), replace(config, device="cuda"))
    torch.testing.assert_close(gpu.curves, cpu.curves, rtol=0, atol=1e-6)
    torch.testing.assert_close(gpu.val_logits, cpu.val_logits, rtol=0, atol=1e-6)


def test_study_if_missing_skips_a_current_study_and_reruns_when_asked(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from conftest import REPO_DIR, SHIPPED_CSV_PATH

    def study(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        args = ["--seeds", "2", "--epochs", "2", "--out", str(tmp_path), "--data", str(SHIPPED_CSV_PATH), "--quiet"]
        return subprocess.run(
            [sys.executable, "-m", "training", "study", *args, *extra],
            cwd=REPO_DIR, capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    first = study("--if-missing")
    assert first.returncode == 0, first.stderr
    stamp = (tmp_path / "study.json").stat().st_mtime_ns
    again = study("--if-missing")
    assert again.returncode == 0, again.stderr
    assert "not rerunning" in again.stdout
    assert (tmp_path / "study.json").stat().st_mtime_ns == stamp
    forced = study("--if-missing", env={"RETRAIN": "1"})
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "study.json").stat().st_mtime_ns != stamp
