"""The study: its statistics against scipy or a direct computation, the claims' verdicts on constructed
numbers, a real (small) study end to end, the file and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from support.paths import REPO_DIR, SHIPPED_CSV_PATH

import training.study as study_module
from survival.study import STUDY_FILE, StudyReport, load_study
from training.cli import main
from training.data import Dataset
from training.loop import TrainConfig
from training.study import StudyOptions, run_study, write_study
from training.study_arms import ArmRuns, collapse_counts, epochs_to_threshold, summarise, train_arms
from training.study_data import make_slots, resample_indices
from training.study_plan import CLAIMS, plan_sha256
from training.study_stats import compare, finding, stat, t_interval

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_study(dataset: Dataset) -> StudyReport:
    """Every part of the study at a reduced size: 3 seeds, 4 epochs, the long run to 6 epochs."""
    patch = pytest.MonkeyPatch()
    patch.setattr(study_module, "LONG_EPOCHS", 6)
    try:
        options = StudyOptions(seeds=(0, 1, 2), sweep=True, regularization=True, long=True, ics=True)
        return run_study(dataset, TrainConfig(epochs=4), options)
    finally:
        patch.undo()


def test_stat_is_mean_and_sample_std() -> None:
    values = [0.7, 0.72, 0.69, 0.75]
    s = stat(values)
    assert (s.mean, s.std) == pytest.approx((np.mean(values), np.std(values, ddof=1)))
    assert s.values == values
    assert stat([0.5]).std == 0.0


def test_t_interval_agrees_with_scipy_and_the_correction_widens_it_by_nadeau_bengio() -> None:
    diffs = [0.011, 0.028, -0.006, 0.034, 0.017, 0.0, 0.022]
    expected = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert t_interval(diffs) == pytest.approx((expected.low, expected.high))
    # Corrected: variance (1/J + n_test/n_train) s^2 instead of s^2/J, same t quantile, same centre.
    ratio, j = 179 / 712, len(diffs)
    low, high = t_interval(diffs, ratio)
    half = sps.t.ppf(0.975, j - 1) * math.sqrt((1 / j + ratio) * np.var(diffs, ddof=1))
    assert (low, high) == pytest.approx((np.mean(diffs) - half, np.mean(diffs) + half))
    assert (high - low) / (expected.high - expected.low) == pytest.approx(math.sqrt(1 + j * ratio))
    assert t_interval([0.02, 0.02, 0.02], ratio) == pytest.approx((0.02, 0.02))
    with pytest.raises(ValueError, match="two resamples"):
        t_interval([0.1])


def test_compare_counts_direction_and_verdict_reads_the_corrected_interval() -> None:
    a, b = [0.70, 0.72, 0.69, 0.71], [0.68, 0.72, 0.70, 0.66]
    acc = compare("x", "y", "accuracy", a, b, higher_is_better=True, test_train_ratio=0.25)
    assert acc.mean_diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (acc.ahead, acc.tied, acc.behind) == (2, 1, 1)
    loss = compare("x", "y", "log_loss", a, b, higher_is_better=False, test_train_ratio=0.25)
    assert (loss.ahead, loss.tied, loss.behind) == (1, 1, 2)
    # Ten resamples, each +1 point +- a little: the plain interval excludes zero, the corrected one does not.
    rng = np.random.default_rng(0)
    diffs = 0.01 + 0.012 * rng.standard_normal(10)
    c = compare("x", "y", "accuracy", diffs.tolist(), [0.0] * 10, higher_is_better=True, test_train_ratio=0.25)
    assert c.ci95[0] > 0 > c.ci95_corrected[0]
    assert finding(c, corrected=False) == "better"
    assert finding(c) == "unclear"
    worse = compare("x", "y", "accuracy", [0.6, 0.61, 0.6], [0.7, 0.7, 0.71], higher_is_better=True,
                    test_train_ratio=0.25)  # fmt: skip
    assert finding(worse) == "worse"
    with pytest.raises(ValueError, match="accuracy"):
        compare("x", "y", "accuracy", a, b[:3], higher_is_better=True, test_train_ratio=0.0)


def test_collapse_and_epochs_to_threshold_on_constructed_runs() -> None:
    labels = np.zeros(20, dtype=np.int64)
    logits = [
        np.linspace(-1, 1, 20),  # both classes
        np.ones(20),  # one class: collapsed
        np.r_[np.ones(19), -1.0],  # 19 of 20 (95 %): nearly collapsed
        np.full(20, np.nan),  # diverged: collapsed
    ]
    runs = ArmRuns("plain", "raw", np.zeros((4, 4, 3)), logits, [labels] * 4, [labels] * 4)
    collapsed, near, diverged = collapse_counts(runs)
    assert (collapsed, near, diverged) == (
        [False, True, False, True],
        [False, False, True, False],
        [False, False, False, True],
    )
    curves = np.zeros((2, 4, 5))
    curves[0, 0] = [0.7, 0.65, 0.59, 0.5, 0.4]
    curves[1, 0] = [0.7, 0.69, 0.68, 0.67, 0.66]
    assert epochs_to_threshold(curves, 0.6, 5) == [3, None]
    assert epochs_to_threshold(curves, 0.6, 2) == [None, None]


def test_small_study_has_every_part_and_consistent_numbers(
    small_study: StudyReport, dataset: Dataset, tmp_path: Path
) -> None:
    s = small_study.settings
    assert (s.seeds, s.resamples, s.scalings, s.folds) == ([0, 1, 2], 3, ["raw", "standardized"], None)
    assert small_study.data.sha256 == dataset.sha256
    assert (small_study.data.n_train, small_study.data.n_val) == (712, 179)
    assert set(small_study.arms) == {"batchnorm/raw", "plain/raw", "batchnorm/standardized", "plain/standardized"}
    for arm in small_study.arms.values():
        assert len(arm.accuracy.values) == 3
        assert [p.epoch for p in arm.at_epochs] == [4, 6]  # the main epoch and the (reduced) long run's end
        assert arm.at_epochs[0].accuracy.values == pytest.approx(arm.accuracy.values)
        assert min(arm.peak_to_final.values) >= 0
        assert len(arm.curve_mean) == 4
    # Majority class: the training split's majority (died) on 110 of 179 validation rows for every seed.
    assert small_study.baselines.majority.values == pytest.approx([110 / 179] * 3)
    assert set(small_study.baselines.logistic) == {"raw", "standardized"}
    assert small_study.sweep is not None
    assert len(small_study.sweep) == 6 * 4
    assert small_study.regularization is not None
    assert len(small_study.regularization) == 3 * 4
    assert small_study.ics is not None
    assert len(small_study.ics) == 4
    # Hidden (16, 8): three Linear layers; the two with a layer below them are measured, named as what they are.
    for shift in small_study.ics:
        assert [x.layer for x in shift.ics] == ["hidden layer 2", "output layer"]
        assert [x.layer for x in shift.input_drift] == ["hidden layer 2", "output layer"]
        assert all(-1 <= v <= 1 for x in shift.ics for v in x.cosine.values)
    scalings = {c.scaling for c in small_study.claims}
    assert scalings == {"raw", "standardized"}
    # Every planned claim on every planned scaling, each tested (every part ran).
    assert {c.id for c in small_study.claims} == {f"{p.id}/{sc}" for p in CLAIMS for sc in p.scalings}
    assert all(c.p_value is not None and c.p_holm is not None for c in small_study.claims)
    assert small_study.plan.sha256 == plan_sha256()
    assert small_study.plan.family_size == len(small_study.claims)
    assert [len(c.points) for c in small_study.speed] == [len(s.loss_thresholds)] * 2
    t = small_study.timings_s
    assert None not in (t.sweep, t.regularization, t.ics)
    assert load_study(write_study(small_study, tmp_path)) == small_study


def test_logistic_baseline_equals_scikit_learn_on_the_same_inputs(small_study: StudyReport, dataset: Dataset) -> None:
    from sklearn.linear_model import LogisticRegression

    slots = make_slots(dataset, (0, 1, 2), None, ("standardized",), TrainConfig())
    direct = []
    for slot in slots:
        y_train, y_val = dataset.labels[slot.split.train_idx], dataset.labels[slot.split.val_idx]
        fit = LogisticRegression(max_iter=5000).fit(slot.split.x_train.double().numpy(), y_train)
        direct.append(float((fit.predict(slot.split.x_val.double().numpy()) == y_val).mean()))
    assert small_study.baselines.logistic["standardized"].values == pytest.approx(direct)


def test_summaries_match_a_direct_computation_on_the_curves(dataset: Dataset) -> None:
    config = TrainConfig(epochs=5)
    slots = make_slots(dataset, (0, 1), None, ("raw",), config)
    runs = train_arms(dataset, slots, config, main_epoch=5, label="", progress=False)["batchnorm/raw"]
    arm = summarise(runs, epochs=5, loss_thresholds=(0.66, 0.62), ratio=179 / 712)
    val_acc, val_loss = runs.curves[:, 3], runs.curves[:, 2]
    assert arm.accuracy.values == pytest.approx(val_acc[:, -1].tolist())
    assert arm.acc_std_last.values == pytest.approx(np.std(val_acc, axis=1).tolist())
    assert arm.loss_std_last.values == pytest.approx(np.std(val_loss, axis=1).tolist())
    assert arm.val_loss_auc.values == pytest.approx(np.mean(val_loss, axis=1).tolist())
    assert arm.peak_to_final.values == pytest.approx((val_acc.max(axis=1) - val_acc[:, -1]).tolist())
    assert arm.gap_log_loss.values == pytest.approx((val_loss[:, -1] - runs.curves[:, 0, -1]).tolist())
    assert arm.train_loss_auc.values == pytest.approx(np.mean(runs.curves[:, 0], axis=1).tolist())
    assert arm.curve_std == pytest.approx(np.std(val_acc, axis=0, ddof=1).tolist())
    assert arm.epochs_to_threshold == [epochs_to_threshold(runs.curves, t, 5) for t in (0.66, 0.62)]
    # The band: the corrected 95 % interval of the mean curve, recomputed from scipy's t quantile.
    half = sps.t.ppf(0.975, 1) * np.sqrt((1 / 2 + 179 / 712) * np.var(val_acc, axis=0, ddof=1))
    assert arm.curve_half95 == pytest.approx(half.tolist())


def test_k_fold_resamples_cover_every_row_once_per_seed_and_train_in_stacks(dataset: Dataset) -> None:
    resamples = resample_indices(dataset, (0, 1), 3, 0.2)
    assert len(resamples) == 6
    for seed in (0, 1):
        vals = np.concatenate([v for s, _, v in resamples if s == seed])
        assert sorted(vals.tolist()) == list(range(dataset.n_rows))
    report = run_study(dataset, TrainConfig(epochs=2), StudyOptions(seeds=(0, 1), folds=3, scalings=("raw",)))
    assert (report.settings.resamples, report.settings.folds) == (6, 3)
    acc = next(c for c in report.comparisons if c.metric == "accuracy")
    # k-fold: the correction uses n_test / n_train = 1 / (k - 1).
    bn, plain = report.arms["batchnorm/raw"].accuracy.values, report.arms["plain/raw"].accuracy.values
    diffs = [a - b for a, b in zip(bn, plain, strict=True)]
    assert acc.ci95_corrected == pytest.approx(t_interval(diffs, 297 / 594))


def test_write_study_is_atomic_and_load_refuses_incomplete_or_non_finite_files(
    small_study: StudyReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_study(small_study, tmp_path)
    good = json.loads(path.read_text())

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_study(small_study.model_copy(update={"verdict": "newer"}), tmp_path)
    monkeypatch.undo()
    assert load_study(path) == small_study
    assert sorted(p.name for p in tmp_path.iterdir()) == [STUDY_FILE]
    missing = json.loads(json.dumps(good))
    del missing["arms"]["plain/raw"]
    bad_files = {
        "missing": (json.dumps(missing), "arms .* are not the arms of its scalings"),
        "nan": (json.dumps(good).replace('"verdict": "', '"x": NaN, "verdict": "', 1), "NaN is not a JSON number"),
        "overflow": (json.dumps(good).replace('"study": ', '"study": 1e999, "_": ', 1), "overflows a float"),
        "deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "old": (json.dumps({**good, "format_version": 1}), "format_version"),
    }
    for name, (text, message) in bad_files.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_study(path)
        assert name


@pytest.mark.system
def test_cli_study_writes_a_valid_report(tmp_path: Path) -> None:
    out = tmp_path / "models"
    args = ["study", "--seeds", "2", "--epochs", "2", "--sweep", "--quiet", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "training", *args, "--data", str(SHIPPED_CSV_PATH)],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = load_study(out / STUDY_FILE)
    assert report is not None
    assert (report.settings.seeds, report.settings.epochs) == ([0, 1], 2)
    assert report.sweep is not None
    assert report.regularization is None
    assert report.verdict in " ".join(done.stdout.split())
    assert "[not shown] BN reduces internal covariate shift at hidden layer 2 (raw): not run (--ics)" in done.stdout
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


@pytest.mark.system
def test_study_if_missing_skips_a_current_study_and_reruns_when_asked(tmp_path: Path) -> None:
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
    # Asking for a part the file lacks reruns it.
    more = study("--if-missing", "--regularization")
    assert more.returncode == 0, more.stderr
    assert "not rerunning" not in more.stdout
    stamp = (tmp_path / "study.json").stat().st_mtime_ns
    forced = study("--if-missing", env={"RETRAIN": "1"})
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "study.json").stat().st_mtime_ns != stamp
