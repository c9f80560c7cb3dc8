"""The private PostgreSQL server's restart (tests/support/postgres.py), which the store's durability tests rely on:
it really restarts the same cluster, committed rows survive it, and an open transaction's do not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select

if TYPE_CHECKING:
    from support.postgres import PostgresServer, StopMode

pytestmark = pytest.mark.system  # the fixture starts a PostgreSQL server

metadata = MetaData()
passengers = Table(
    "passengers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False),
)
COMMITTED = [{"id": 1, "name": "Braund, Mr. Owen Harris"}, {"id": 2, "name": "Cumings, Mrs. John Bradley"}]


# fast: a clean shutdown (open transactions rolled back, a checkpoint); immediate: a crash, the WAL is replayed.
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_committed_rows_survive_a_restart_and_uncommitted_ones_do_not(
    postgres_server: PostgresServer, postgres_url: str, mode: StopMode
) -> None:
    engine = create_engine(postgres_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(passengers), COMMITTED)
            started = conn.execute(select(func.pg_postmaster_start_time())).scalar_one()
        with engine.connect() as pending:
            pending.execute(insert(passengers), [{"id": 3, "name": "never committed"}])
            postgres_server.restart(mode)
            pending.invalidate()  # its server process is gone: close it without a rollback
    finally:
        engine.dispose()

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.pg_postmaster_start_time())).scalar_one() > started
            assert [row._asdict() for row in conn.execute(select(passengers).order_by(passengers.c.id))] == COMMITTED
    finally:
        engine.dispose()
