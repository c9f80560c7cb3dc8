"""Shared fixtures: paths, the CI-aware skip rule, and tiny checkpoints trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_DIR.parent / "shared"
KAGGLE_DIR = SHARED_DIR / "data" / "titanic"
SHIPPED_CSV_PATH = REPO_DIR / "data" / "titanic.csv"


def need(condition: bool, reason: str) -> None:
    """Skip the calling test when `condition` is false, but fail under CI=true.

    A user's checkout may lack ../shared, Chromium or Docker; CI must have them all,
    so a missing prerequisite there is a broken pipeline, not a reason to skip.
    """
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but a prerequisite is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kaggle_train_path() -> Path:
    """Kaggle's canonical train.csv from ../shared (reference data, tests only)."""
    path = KAGGLE_DIR / "train.csv"
    need(path.is_file(), f"reference file {path} is not present (it lives in ../shared, outside a user's checkout)")
    return path


@pytest.fixture(scope="session")
def kaggle_test_path() -> Path:
    """Kaggle's canonical test.csv from ../shared (reference data, tests only)."""
    path = KAGGLE_DIR / "test.csv"
    need(path.is_file(), f"reference file {path} is not present (it lives in ../shared, outside a user's checkout)")
    return path


# Few epochs keep the session fixture fast; the behaviour under test does not depend on convergence.
FIXTURE_EPOCHS = 4


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with a real, freshly trained pair of checkpoints (shared by the session: never modify)."""
    from survival.runs import save_run
    from training.data import load_csv
    from training.loop import TrainConfig
    from training.run import train_run

    out = tmp_path_factory.mktemp("models")
    result = train_run(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=FIXTURE_EPOCHS))
    save_run(out, result.run_id, result.checkpoint_payload())
    return out
