"""Shared fixtures (tiny checkpoints trained once per session, the reference data) and the system marker's rule."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.paths import FIXTURE_EPOCHS, KAGGLE_DIR, SHIPPED_CSV_PATH, need

if TYPE_CHECKING:
    from training.data import Dataset

# The system marker (pyproject.toml): a test that starts a process, nginx, Docker or a browser. An unmarked test that
# tries is stopped here, so `pytest -m "not system"` stays the fast in-process loop it claims to be.
_POPEN_INIT = subprocess.Popen.__init__


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Unmarked tests may not start processes."""
    if item.get_closest_marker("system") is not None:
        return

    def refuse(self: subprocess.Popen[bytes], args: object, *rest: object, **options: object) -> None:
        raise AssertionError(f"{item.nodeid} starts a process ({args!r}) but has no `system` marker")

    subprocess.Popen.__init__ = refuse  # type: ignore[assignment,method-assign]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Every test's process rule ends with it."""
    subprocess.Popen.__init__ = _POPEN_INIT  # type: ignore[method-assign]


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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread, as the trainer's CLI uses (a second only adds synchronisation at this model size)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """The shipped Titanic CSV, loaded once (never modify)."""
    from training.data import load_csv

    return load_csv(SHIPPED_CSV_PATH)
