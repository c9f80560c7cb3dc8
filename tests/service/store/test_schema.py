"""The store's schema: the Alembic migrations build exactly what service/store/tables.py declares (SQLite and
PostgreSQL), the code's revision is Alembic's head, upgrading is idempotent and safe from several threads at once,
and every bad STORE_URL is one StoreError line naming STORE_URL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service.config import Settings
from service.store.database import StoreError, make_engine, store_url
from service.store.migrate import current_revision, head_revision, upgrade
from service.store.store import ensure_schema, prepare
from service.store.tables import SCHEMA_REVISION, metadata

TABLES = {"predictions", "outcomes", "runs", "control"}


def sqlite_engine(path: Path) -> sa.Engine:
    """The store's own engine for an SQLite file."""
    url = store_url(f"sqlite:///{path}")
    assert url is not None
    return make_engine(url, connect_timeout_s=5)


def schema_differences(engine: sa.Engine) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match tables.py (types, nullability,
    indexes, comments where the database keeps them, server defaults)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        differences: list[Any] = compare_metadata(context, metadata)
    return differences


def sqlite_schema(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    """Every table's and index's CREATE statement, as SQLite keeps them."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").all()
    return [(row[0], row[1], row[2]) for row in rows]


def test_the_migrations_build_what_tables_py_declares_on_sqlite(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "s.db")
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) is None  # the revision it found: an empty database
        assert current_revision(engine) == SCHEMA_REVISION
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


@pytest.mark.system  # a private PostgreSQL server
def test_the_migrations_build_what_tables_py_declares_on_postgresql(postgres_url: str) -> None:
    url = store_url(postgres_url)
    assert url is not None
    engine = make_engine(url, connect_timeout_s=10)
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) is None
        assert current_revision(engine) == SCHEMA_REVISION
        # PostgreSQL keeps the columns' comments, so they are compared too.
        assert schema_differences(engine) == []
        assert upgrade(engine) == SCHEMA_REVISION
        assert ensure_schema(engine) == "ready"
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_the_codes_schema_revision_is_alembics_head() -> None:
    # A process that finds the database at SCHEMA_REVISION skips Alembic: a new migration must move it too.
    assert head_revision() == SCHEMA_REVISION


def test_upgrading_twice_changes_nothing_and_keeps_the_rows(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "s.db")
    try:
        assert ensure_schema(engine) == f"schema empty -> {SCHEMA_REVISION}"
        before = sqlite_schema(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO control (name, value, updated_at) VALUES ('answer', 'plain', 1)")
        assert upgrade(engine) == SCHEMA_REVISION
        assert ensure_schema(engine) == "ready"
        assert sqlite_schema(engine) == before
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT name, value FROM control").all() == [("answer", "plain")]
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [(SCHEMA_REVISION,)]
    finally:
        engine.dispose()


def test_prepare_says_what_it_did_and_then_that_the_store_is_ready(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/deeper/s.db")  # the directory is created
    assert prepare(settings) == f"prediction store at sqlite+pysqlite:///{tmp_path}/deeper/s.db (schema empty -> 0001)"
    assert prepare(settings) == f"prediction store at sqlite+pysqlite:///{tmp_path}/deeper/s.db (ready)"
    assert prepare(Settings(store_url="none")) is None
    assert prepare(Settings(store_url=" None ")) is None


def test_several_threads_migrating_one_empty_store_at_once_all_succeed(tmp_path: Path) -> None:
    # Without the lock beside the database, all but one would fail on "table already exists".
    path = tmp_path / "s.db"
    start = threading.Barrier(4)
    results: list[str | BaseException] = []

    def migrate() -> None:
        engine = sqlite_engine(path)
        start.wait()
        try:
            results.append(ensure_schema(engine))
        except BaseException as exc:  # reported by the assertion below
            results.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One migrated; the others, reading the schema again under the lock, found it ready. None failed.
    assert sorted(map(str, results)) == ["ready"] * 3 + [f"schema empty -> {SCHEMA_REVISION}"], results
    engine = sqlite_engine(path)
    try:
        assert current_revision(engine) == SCHEMA_REVISION
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def one_line_error(call: Any, *args: Any) -> str:
    """The StoreError message of `call(*args)`, checked to be one line naming STORE_URL."""
    with pytest.raises(StoreError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("STORE_URL")
    return message


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("mysql://user@localhost/store", "mysql is not supported"),
        ("oracle+oracledb://user@localhost/store", "oracle is not supported"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
        ("a store somewhere", "not a database URL"),
    ],
)
def test_an_unusable_store_url_is_one_line_naming_store_url(text: str, said: str) -> None:
    assert said in one_line_error(store_url, text)
    assert said in one_line_error(prepare, Settings(store_url=text))


def test_postgresql_urls_use_psycopg_3() -> None:
    for text in ("postgresql://u@db/store", "postgresql+psycopg://u@db/store", "postgresql+psycopg2://u@db/store"):
        url = store_url(text)
        assert url is not None
        assert url.drivername == "postgresql+psycopg"
    assert store_url("none") is None


def test_an_sqlite_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    # Running as root, permissions do not stop a mkdir; a regular file where the directory should be does.
    (tmp_path / "taken").write_text("not a directory")
    message = one_line_error(prepare, Settings(store_url=f"sqlite:///{tmp_path}/taken/store/s.db"))
    assert f"cannot create the directory of {tmp_path}/taken/store/s.db" in message


def test_an_sqlite_path_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.db").mkdir()
    message = one_line_error(prepare, Settings(store_url=f"sqlite:///{tmp_path}/s.db"))
    assert message.startswith(f"STORE_URL=sqlite+pysqlite:///{tmp_path}/s.db: cannot reach the store: ")


def test_an_unreachable_postgresql_server_is_one_line_without_the_password(tmp_path: Path) -> None:
    # Port 9 on the loopback (discard) is closed on a test machine: the connection is refused at once.
    settings = Settings(store_url="postgresql://store:s3cret@127.0.0.1:9/store", store_connect_timeout_s=2)
    message = one_line_error(prepare, settings)
    assert message.startswith("STORE_URL=postgresql+psycopg://store:***@127.0.0.1:9/store: cannot reach the store")
    assert "s3cret" not in message
