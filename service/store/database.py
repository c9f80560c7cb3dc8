"""STORE_URL to a SQLAlchemy engine: SQLite (WAL, durable commits) or PostgreSQL through psycopg 3."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL

from service.store import recording

# How long a SQLite connection waits for another worker's write lock before it reports the database busy.
SQLITE_BUSY_MS: Final[int] = 5_000


class StoreError(Exception):
    """The store cannot be used; the message is one line naming STORE_URL and the problem."""


def store_url(text: str) -> URL | None:
    """The parsed STORE_URL (None for `none`); StoreError for a URL this service does not support."""
    if not recording(text):
        return None
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        raise StoreError("STORE_URL: not a database URL (sqlite:///PATH, postgresql+psycopg://..., or none)") from None
    if url.get_backend_name() == "postgresql":
        # Plain postgresql:// would pick psycopg2, which is not installed; psycopg 3 is the one driver shipped.
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise StoreError("STORE_URL: an SQLite store needs a file (sqlite:///PATH): memory is lost at exit")
        return url.set(drivername="sqlite+pysqlite")
    raise StoreError(f"STORE_URL: {url.get_backend_name()} is not supported (sqlite:///PATH or postgresql+psycopg://)")


def shown(url: URL) -> str:
    """The URL as logs and errors show it: never the password."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of an SQLite URL, else None."""
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def make_engine(url: URL, connect_timeout_s: float) -> sa.Engine:
    """An engine for the store: the SQLite file's directory created, every connection set up for it."""
    path = sqlite_path(url)
    if path is None:
        connect: dict[str, Any] = {"connect_timeout": max(1, math.ceil(connect_timeout_s))}
        # Per worker: the writer's thread and at most four request threads (AppState.store_limiter).
        return sa.create_engine(
            url, connect_args=connect, pool_pre_ping=True, pool_size=5, max_overflow=0, pool_timeout=connect_timeout_s
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"STORE_URL: cannot create the directory of {path}: {exc.strerror}") from None
    engine = sa.create_engine(url, connect_args={"timeout": connect_timeout_s, "check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_setup)
    return engine


def _sqlite_setup(dbapi_connection: Any, record: Any) -> None:
    # WAL: readers (GET /comparison) never block the writer and the writer never blocks them; synchronous=FULL:
    # a commit is on disk when it returns, so an acknowledged outcome survives a crash of the machine, not only
    # of the process. busy_timeout: several workers share the file and take turns at its write lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def placeholder(engine: sa.Engine) -> str:
    """The DB-API parameter marker of the engine's driver (the writer's statements are prepared by hand)."""
    return "?" if engine.dialect.paramstyle == "qmark" else "%s"


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only (a driver's error can run to many lines)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
