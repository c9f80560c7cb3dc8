"""STORE_RETENTION_ROWS and STORE_RETENTION_DAYS: the oldest predictions and their outcomes deleted in small
transactions, so the writers are never held up for long."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from service.store.tables import outcomes, predictions

# Rows per DELETE transaction.
CHUNK: Final[int] = 5_000


def cutoff(engine: sa.Engine, max_rows: int | None, max_days: float | None, now: float) -> float | None:
    """The time at or before which predictions go (None: nothing to delete)."""
    limits: list[float] = []
    if max_days is not None:
        limits.append(now - max_days * 86_400)
    if max_rows is not None:
        with engine.connect() as connection:
            newest_dropped = connection.execute(
                sa.select(predictions.c.at).order_by(predictions.c.at.desc()).limit(1).offset(max_rows)
            ).scalar_one_or_none()
        if newest_dropped is not None:
            limits.append(newest_dropped)
    return max(limits) if limits else None


def delete_through(engine: sa.Engine, table: sa.Table, column: sa.Column[float], until: float) -> int:
    """Delete the rows with `column` <= `until`, CHUNK at a time; how many went."""
    deleted = 0
    while True:
        with engine.begin() as connection:
            boundary = connection.execute(
                sa.select(column).where(column <= until).order_by(column).limit(1).offset(CHUNK)
            ).scalar_one_or_none()
            last = boundary is None
            # Through the boundary, not before it: when more than CHUNK rows share the oldest time (one big
            # request), `column < boundary` would delete nothing and this loop would never end.
            condition = column <= until if last else column <= boundary
            deleted += connection.execute(table.delete().where(condition)).rowcount
        if last:
            return deleted


def enforce(engine: sa.Engine, max_rows: int | None, max_days: float | None, now: float) -> int:
    """Apply the retention bounds; the predictions deleted."""
    until = cutoff(engine, max_rows, max_days, now)
    if until is None:
        return 0
    delete_through(engine, outcomes, outcomes.c.predicted_at, until)
    return delete_through(engine, predictions, predictions.c.at, until)
