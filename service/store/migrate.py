"""The store's schema brought to Alembic's head, by one process at a time (the launcher, before any worker)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.store.database import StoreError, first_line, shown, sqlite_path

SCRIPT_LOCATION: Final[str] = "service.store:migrations"
# pg_advisory_lock's key: any constant shared by every process that migrates this store.
ADVISORY_LOCK_KEY: Final[int] = 0x5EA5_0001


def alembic_config() -> Config:
    """Alembic's configuration: the migrations shipped in the package, no ini file."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head_revision() -> str | None:
    """The newest schema version the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """The schema version the database is at (None: empty)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def exclusive(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that no other process migrating the same store holds at the same time."""
    path = sqlite_path(engine.url)
    if path is not None:
        # SQLite has no advisory lock; a lock file beside the database stands in for it.
        with open(path.with_name(path.name + ".migrate-lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with engine.begin() as connection:
                yield connection
        return
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        yield connection


def upgrade(engine: sa.Engine) -> str | None:
    """Bring the schema to head (a no-op when it is there); the revision it found, read under the lock.
    StoreError when it cannot."""
    config = alembic_config()
    try:
        with exclusive(engine) as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise StoreError(f"STORE_URL={shown(engine.url)}: cannot prepare the store: {first_line(exc)}") from None
    revision = current_revision(engine)
    head = head_revision()
    if revision != head:
        raise StoreError(f"STORE_URL={shown(engine.url)}: the schema is at {revision}, this code needs {head}")
    return before
