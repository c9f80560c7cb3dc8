"""What GET /comparison and GET /monitoring read from the store, as NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from service.store.tables import outcomes, predictions
from survival.features import FloatArray


@dataclass(frozen=True)
class ComparisonRows:
    """Every labelled prediction's two probabilities and outcome (oldest first), the most recent unlabelled
    predictions' probabilities, and how many predictions the store holds."""

    labelled_batchnorm: FloatArray
    labelled_plain: FloatArray
    survived: FloatArray
    unlabelled_batchnorm: FloatArray
    unlabelled_plain: FloatArray
    n_predictions: int


LABELLED_SQL = "SELECT p_batchnorm, p_plain, survived FROM outcomes ORDER BY predicted_at, request_id, row_index"


def driver_rows(connection: sa.Connection, sql: str) -> FloatArray:
    """A query's rows of numbers, fetched through the driver's own cursor as one float array.

    A hundred thousand SQLAlchemy Row objects handed to NumPy cost far more than the statistics computed on them
    (NumPy probes every Row for the array protocols); the driver's plain tuples convert at C speed
    (bench/bench_store.py, part 3).
    """
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        return np.array(cursor.fetchall(), dtype=np.float64)
    finally:
        cursor.close()


def comparison_rows(engine: sa.Engine, window: int) -> ComparisonRows:
    """One consistent read of what the comparison needs (the labelled rows come from one table, in time order)."""
    with engine.connect() as connection:
        labelled = driver_rows(
            connection,
            "SELECT p_batchnorm, p_plain, survived FROM outcomes ORDER BY predicted_at, request_id, row_index",
        ).reshape(-1, 3)
        n_predictions = connection.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one()
        recent = (
            sa.select(predictions.c.p_batchnorm, predictions.c.p_plain)
            .where(
                ~sa.exists().where(
                    outcomes.c.request_id == predictions.c.request_id, outcomes.c.row_index == predictions.c.row_index
                )
            )
            .order_by(predictions.c.at.desc())
            .limit(window)
        )
        unlabelled = np.array(connection.execute(recent).all(), dtype=np.float64).reshape(-1, 2)
    return ComparisonRows(
        labelled_batchnorm=labelled[:, 0],
        labelled_plain=labelled[:, 1],
        survived=labelled[:, 2],
        unlabelled_batchnorm=unlabelled[::-1, 0],
        unlabelled_plain=unlabelled[::-1, 1],
        n_predictions=int(n_predictions),
    )


@dataclass(frozen=True)
class RecentInputs:
    """The inputs (as received) of the most recent predictions of some runs, oldest first, and the oldest's time."""

    raw: FloatArray
    since: float | None


def recent_inputs(engine: sa.Engine, run_ids: tuple[str, ...], limit: int) -> RecentInputs:
    """The last `limit` passengers the runs answered, on every worker and replica (GET /monitoring's window)."""
    query = (
        sa.select(predictions.c.pclass, predictions.c.fare, predictions.c.age, predictions.c.at)
        .where(predictions.c.run_id.in_(run_ids))
        .order_by(predictions.c.at.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    # NULL (a value the request did not give) becomes NaN, what the monitor's tests read as missing.
    table = np.array([(r[0], r[1], r[2], r[3]) for r in rows], dtype=np.float64).reshape(-1, 4)[::-1]
    return RecentInputs(raw=np.ascontiguousarray(table[:, :3]), since=float(table[0, 3]) if len(rows) else None)
