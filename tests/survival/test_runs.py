"""Runs on disk: `python -m training runs`, `promote`, --keep, the model directory's lock, --if-missing, --out."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest
from support.paths import REPO_DIR, SHIPPED_CSV_PATH
from support.runs import copy_models, current_id, payload_of

from survival.checkpoint import CURRENT_LINK, RUNS_DIR, SERVED_FILE, TMP_PREFIX, CheckpointError
from survival.runs import LOCK_FILE, list_runs, model_dir_lock, promote, prune_runs, save_run
from survival.served import load_served_current
from training.cli import main as trainer_main
from training.run import new_run_id

QUICK: Final = ["--epochs", "1", "--quiet", "--data", str(SHIPPED_CSV_PATH)]


def fresh_id() -> str:
    """A run id as the trainer makes them: later ones sort after earlier ones."""
    return new_run_id(datetime.now(UTC))


def run_names(models: Path) -> list[str]:
    """The run directories on disk, oldest first (temporary ones included)."""
    return sorted(p.name for p in (models / RUNS_DIR).iterdir())


@pytest.fixture
def models(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's models, plus two newer runs (the newest current): runs a, b, c."""
    out = copy_models(model_dir, tmp_path / "models")
    for shift in (0.1, 0.2):
        run_id = fresh_id()
        save_run(out, run_id, payload_of(out, run_id, shift=shift))
    return out


def test_runs_lists_every_run_and_marks_current(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_a, run_b, run_c = run_names(models)
    assert trainer_main(["runs", "--out", str(models)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "run id" in lines[0]
    assert "batchnorm" in lines[0]
    assert [line[2:].split()[0] for line in lines[1:4]] == [run_a, run_b, run_c]
    assert [line[0] for line in lines[1:4]] == [" ", " ", "*"]
    assert lines[4] == "* current"
    accuracy = list_runs(models)[2].accuracy
    assert lines[3].split()[-2:] == [f"{accuracy['batchnorm']:.3f}", f"{accuracy['plain']:.3f}"]


def test_runs_of_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trainer_main(["runs", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no runs in {tmp_path}\n"


def test_promote_rolls_back_and_forward(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = run_names(models)
    run_b, run_c = names[1], names[2]
    assert trainer_main(["promote", run_b, "--out", str(models)]) == 0
    assert current_id(models) == run_b
    assert load_served_current(models)[1]["plain"].metadata.run_id == run_b
    assert trainer_main(["promote", run_c, "--out", str(models)]) == 0
    assert current_id(models) == run_c
    assert capsys.readouterr().out.splitlines()[-1] == f"{models / CURRENT_LINK} -> {models / RUNS_DIR / run_c}"


def test_promote_refuses_an_unknown_run_with_one_line(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_a, run_b, run_c = run_names(models)
    assert trainer_main(["promote", "no-such-run", "--out", str(models)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {models / RUNS_DIR / 'no-such-run'}: no such run (runs here: {run_a}, {run_b}, {run_c})\n"
    assert current_id(models) == run_c


@pytest.mark.parametrize("run_id", ["../models", ".tmp-x", ""])
def test_promote_refuses_a_path_that_is_not_a_run_name(models: Path, run_id: str) -> None:
    run_c = run_names(models)[2]
    with pytest.raises(CheckpointError, match="no such run"):
        promote(models, run_id)
    assert current_id(models) == run_c


def test_promote_refuses_an_unloadable_run_and_keeps_current(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = run_names(models)
    run_b, run_c = names[1], names[2]
    served = models / RUNS_DIR / run_b / "plain" / SERVED_FILE
    served.write_bytes(served.read_bytes()[:50])
    assert trainer_main(["promote", run_b, "--out", str(models)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert f"{run_b}/plain/{SERVED_FILE}: sha256" in err[0]
    assert current_id(models) == run_c


def test_promote_refuses_an_incomplete_run(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = run_names(models)
    run_b, run_c = names[1], names[2]
    (models / RUNS_DIR / run_b / "batchnorm" / "metadata.json").unlink()
    assert trainer_main(["promote", run_b, "--out", str(models)]) == 1
    assert "batchnorm/metadata.json: metadata file is missing" in capsys.readouterr().err
    assert current_id(models) == run_c


def test_keep_prunes_old_runs_but_never_current(models: Path) -> None:
    names = run_names(models)
    run_a, run_c = names[0], names[2]
    promote(models, run_a)  # roll back to the oldest run
    prune_runs(models, keep=1)
    # The newest run is kept by count, the oldest because it is current; B goes.
    assert run_names(models) == [run_a, run_c]
    assert current_id(models) == run_a


def test_keep_flag_of_the_trainer(models: Path) -> None:
    run_a, run_b, run_c = run_names(models)
    assert trainer_main([*QUICK, "--out", str(models), "--keep", "2"]) == 0
    run_d = current_id(models)
    assert run_d not in (run_a, run_b, run_c)
    assert run_names(models) == [run_c, run_d]


def test_default_keeps_three_runs(models: Path) -> None:
    names = run_names(models)
    run_b, run_c = names[1], names[2]
    run_d = fresh_id()
    save_run(models, run_d, payload_of(models, run_d, shift=0.3))
    assert run_names(models) == [run_b, run_c, run_d]


def test_a_second_writer_waits_for_the_lock_then_gives_up_with_one_line(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = run_names(models)
    run_b, run_c = names[1], names[2]
    with model_dir_lock(models):
        code = trainer_main(["promote", run_b, "--out", str(models), "--lock-timeout", "0.3"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"waiting for another trainer writing to {models} ...",
        f"error: {models / LOCK_FILE}: another trainer is still writing to {models} after 0.3 s; "
        "try again when it is done",
    ]
    assert current_id(models) == run_c


def test_a_second_writer_proceeds_once_the_lock_is_released(models: Path) -> None:
    run_b = run_names(models)[1]
    released = threading.Event()

    def hold() -> None:
        with model_dir_lock(models):
            released.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        timer = threading.Timer(0.5, released.set)
        timer.start()
        promote(models, run_b, lock_timeout_s=30)
    finally:
        released.set()
        holder.join()
    assert current_id(models) == run_b


@pytest.mark.system
def test_two_trainers_at_once_both_complete_and_leave_one_consistent_pair(tmp_path: Path) -> None:
    out = tmp_path / "models"
    command = [sys.executable, "-m", "training", *QUICK, "--out", str(out)]
    trainers = [
        subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    ends = [trainer.communicate(timeout=300) for trainer in trainers]
    assert [trainer.returncode for trainer in trainers] == [0, 0], ends
    names = run_names(out)
    assert len(names) == 2
    assert not any(name.startswith(TMP_PREFIX) for name in names)
    assert current_id(out) in names
    assert {s.metadata.run_id for s in load_served_current(out)[1].values()} == {current_id(out)}
    assert [r.run_id for r in list_runs(out)] == names


def test_if_missing_reuses_a_run_of_the_same_data_and_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    assert trainer_main([*QUICK, "--out", str(out)]) == 0
    run_a = current_id(out)
    capsys.readouterr()
    assert trainer_main([*QUICK, "--out", str(out), "--if-missing"]) == 0
    assert capsys.readouterr().out == (
        f"run {run_a} in {out} was trained on this data with these settings; not retraining (set RETRAIN=1 to force)\n"
    )
    assert current_id(out) == run_a
    # Other settings: trains, and says why in one line.
    assert trainer_main([*QUICK, "--out", str(out), "--if-missing", "--seed", "3", "--lr", "0.01"]) == 0
    err = capsys.readouterr().err
    assert err == f"training: run {run_a} was trained with other settings (seed 0 -> 3, lr 0.001 -> 0.01)\n"
    run_b = current_id(out)
    assert run_b != run_a
    # Other data (one fare changed): trains too.
    other = tmp_path / "other.csv"
    other.write_text(SHIPPED_CSV_PATH.read_text().replace(",7.25,", ",7.26,", 1))
    args = ["--epochs", "1", "--quiet", "--data", str(other), "--out", str(out), "--if-missing", "--seed", "3"]
    assert trainer_main([*args, "--lr", "0.01"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"training: run {run_b} was trained on other data (titanic.csv sha256 ")
    assert f"not {other} " in err
    assert current_id(out) != run_b


def test_if_missing_on_an_empty_directory_says_it_trains_the_first_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fresh"
    assert trainer_main([*QUICK, "--out", str(out), "--if-missing"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"training: {out} holds no run yet; training the first pair now")
    assert "train first" not in err
    assert (out / CURRENT_LINK).is_symlink()


def test_if_missing_trains_when_the_current_run_is_unusable(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = run_names(models)
    run_b, run_c = names[1], names[2]
    served = models / CURRENT_LINK / "plain" / SERVED_FILE
    served.write_bytes(b"")
    assert trainer_main([*QUICK, "--out", str(models), "--if-missing"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("training: no usable run (")
    assert "plain/served.safetensors: sha256" in err
    assert current_id(models) not in (run_b, run_c)


def test_an_out_under_a_file_fails_at_once_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    # 200 epochs: were the check made after training, this would take seconds and print a progress bar.
    assert trainer_main(["--quiet", "--out", str(blocker / "models")]) == 1
    assert capsys.readouterr().err == f"error: --out {blocker / 'models'}: cannot write there (Not a directory)\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere; a read-only directory does not stop it")
def test_an_out_without_permission_fails_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    assert trainer_main(["--quiet", "--out", str(locked)]) == 1
    assert capsys.readouterr().err == f"error: --out {locked}: cannot write there (Permission denied)\n"


def test_an_error_while_saving_is_one_line_and_exit_1(
    models: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_c = run_names(models)[2]

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("survival.runs.save_file", disk_full)
    assert trainer_main([*QUICK, "--out", str(models)]) == 1
    assert capsys.readouterr().err == (f"error: cannot write the run to {models}: [Errno 28] No space left on device\n")
    assert current_id(models) == run_c
    assert not any(name.startswith(TMP_PREFIX) for name in run_names(models))
