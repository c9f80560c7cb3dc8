"""Shared fixtures (tiny checkpoints trained once per session, the reference data, a private PostgreSQL server) and
the system marker's rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.paths import FIXTURE_EPOCHS, KAGGLE_DIR, SHIPPED_CSV_PATH, need

if TYPE_CHECKING:
    from support.postgres import PostgresServer

    from training.data import Dataset

# Every app and server the tests start records its predictions into one throwaway SQLite store (a test of the store
# names its own), never into ./var of the checkout or a database the developer's STORE_URL points at.
_STORE_DIR = tempfile.mkdtemp(prefix="titanic-test-store-")
os.environ["STORE_URL"] = f"sqlite:///{_STORE_DIR}/predictions.db"


def pytest_unconfigure(config: pytest.Config) -> None:
    """The throwaway store goes with the session."""
    shutil.rmtree(_STORE_DIR, ignore_errors=True)


# The system marker (pyproject.toml): a test that starts a process, nginx, Docker or a browser. An unmarked test that
# tries is stopped here, so `pytest -m "not system"` stays the fast in-process loop it claims to be.
_POPEN_INIT = subprocess.Popen.__init__
# Fixtures that start a process. A session fixture starts it in the first test that requests it, so a test that
# uses one later would start none itself and pass the rule above unmarked: collection refuses that instead.
PROCESS_FIXTURES = frozenset({"postgres_server", "postgres_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a fixture of PROCESS_FIXTURES is marked `system`."""
    unmarked = [
        item.nodeid
        for item in items
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("system") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            f"these tests use a fixture that starts a process but have no `system` marker: {unmarked}"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Unmarked tests may not start processes."""
    if item.get_closest_marker("system") is not None:
        return

    def refuse(self: subprocess.Popen[bytes], args: object, *rest: object, **options: object) -> None:
        raise AssertionError(f"{item.nodeid} starts a process ({args!r}) but has no `system` marker")

    subprocess.Popen.__init__ = refuse  # type: ignore[assignment,method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Every test's process rule ends with it: before the fixtures' teardown, which may stop a session's server
    (PostgreSQL) after an unmarked test that happened to run last."""
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session (tests/support/postgres.py), never the system cluster: stopped
    and removed at the end. Use postgres_url for a database; restart() for durability tests."""
    from support.postgres import NO_POSTGRES_USER, NOT_INSTALLED, find_binaries, find_owner, private_server

    binaries, owner = find_binaries(), find_owner()
    need(binaries is not None, NOT_INSTALLED)
    need(owner is not None, NO_POSTGRES_USER)
    assert binaries is not None
    assert owner is not None
    with private_server(binaries, owner) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database on postgres_server, dropped after the test."""
    from support.postgres import drop_database, fresh_database

    url = fresh_database(postgres_server)
    yield url
    if not postgres_server.running:  # the test stopped it (a durability test that failed between stop and start)
        postgres_server.start()
    drop_database(postgres_server, url)
