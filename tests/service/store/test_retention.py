"""Retention (service/store/retention.py) on a real SQLite store: STORE_RETENTION_ROWS keeps the newest predictions,
STORE_RETENTION_DAYS those of the last days, and the outcomes of deleted predictions go with them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.store import retention
from service.store.database import make_engine, store_url
from service.store.store import ensure_schema
from service.store.tables import outcomes, predictions

NOW: Final = 1_800_000_000.0
DAY: Final = 86_400.0
# Far longer than any enforce() here takes: past it, the call is taken to loop for ever.
HANG_S: Final = 20.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh store in a real SQLite file."""
    url = store_url(f"sqlite:///{tmp_path}/s.db")
    assert url is not None
    engine = make_engine(url, connect_timeout_s=5)
    ensure_schema(engine)
    yield engine
    engine.dispose()


# A request: its rows share one time. Here (request number, rows, time).
Request = tuple[int, int, float]


def insert(engine: sa.Engine, requests: list[Request], labelled_every: int = 2) -> None:
    """Store the requests' predictions, and an outcome for every `labelled_every`-th row."""
    rows = [
        {
            "request_id": f"r{n}",
            "row_index": i,
            "at": at,
            "pclass": 3,
            "fare": None,
            "age": 30.0,
            "fare_filled": 8.05,
            "age_filled": 30.0,
            "p_batchnorm": 0.25,
            "p_plain": 0.5,
            "answered": "both",
            "run_id": "run",
            "passenger_id": None,
        }
        for n, size, at in requests
        for i in range(size)
    ]
    labels = [
        {
            "request_id": row["request_id"],
            "row_index": row["row_index"],
            "survived": 1,
            "labelled_at": NOW,
            "predicted_at": row["at"],
            "p_batchnorm": 0.25,
            "p_plain": 0.5,
            "answered": "both",
            "run_id": "run",
        }
        for k, row in enumerate(rows)
        if k % labelled_every == 0
    ]
    with engine.begin() as connection:
        connection.execute(predictions.delete())
        connection.execute(outcomes.delete())
        if rows:
            connection.execute(predictions.insert(), rows)
        if labels:
            connection.execute(outcomes.insert(), labels)


def keys(engine: sa.Engine, table: sa.Table) -> set[tuple[str, int]]:
    """The (request id, row) of every row of `table`."""
    with engine.connect() as connection:
        return {
            (r.request_id, r.row_index) for r in connection.execute(sa.select(table.c.request_id, table.c.row_index))
        }


def enforce(engine: sa.Engine, max_rows: int | None, max_days: float | None) -> int:
    """retention.enforce, in a thread that must finish (a loop that never ends fails here instead of hanging)."""
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(retention.enforce(engine, max_rows, max_days, NOW)), daemon=True
    )
    worker.start()
    worker.join(HANG_S)
    assert not worker.is_alive(), "retention.enforce did not finish"
    assert len(result) == 1
    return result[0]


def test_retention_rows_keeps_the_newest_rows_and_their_outcomes(engine: sa.Engine) -> None:
    requests = [(n, 1, NOW - 1000 + n) for n in range(10)]
    insert(engine, requests)
    labelled_before = keys(engine, outcomes)
    assert enforce(engine, 4, None) == 6
    kept = keys(engine, predictions)
    assert kept == {(f"r{n}", 0) for n in range(6, 10)}
    assert keys(engine, outcomes) == labelled_before & kept
    assert enforce(engine, 4, None) == 0  # already within the bound
    assert keys(engine, predictions) == kept


def test_retention_days_deletes_what_is_older(engine: sa.Engine) -> None:
    ages_days = [40.0, 31.0, 30.0, 29.99, 5.0, 0.0]
    insert(engine, [(n, 2, NOW - days * DAY) for n, days in enumerate(ages_days)], labelled_every=1)
    assert enforce(engine, None, 30) == 6  # 40, 31 and exactly 30 days old: two rows each
    expected = {(f"r{n}", i) for n in (3, 4, 5) for i in (0, 1)}
    assert keys(engine, predictions) == keys(engine, outcomes) == expected


def test_nothing_to_enforce_deletes_nothing(engine: sa.Engine) -> None:
    insert(engine, [(n, 3, NOW - n * DAY) for n in range(5)])
    assert enforce(engine, None, None) == 0
    assert enforce(engine, 15, None) == 0
    assert enforce(engine, None, 10) == 0
    assert len(keys(engine, predictions)) == 15


def test_a_request_larger_than_a_deletion_chunk_is_deleted(engine: sa.Engine) -> None:
    # One /predict request may hold up to MAX_BATCH_SIZE rows, all of one time: more than a DELETE's CHUNK.
    big = retention.CHUNK + 2
    insert(engine, [(0, big, NOW - 3 * DAY), (1, 5, NOW - 2 * DAY), (2, 5, NOW - DAY)], labelled_every=1)
    assert enforce(engine, 10, None) == big
    assert keys(engine, predictions) == keys(engine, outcomes) == {(f"r{n}", i) for n in (1, 2) for i in range(5)}
    insert(engine, [(0, big, NOW - 3 * DAY), (1, 5, NOW - DAY)], labelled_every=1)
    assert enforce(engine, None, 2) == big
    assert keys(engine, predictions) == keys(engine, outcomes) == {("r1", i) for i in range(5)}


requests_drawn = st.lists(
    st.tuples(st.integers(1, 6), st.floats(0, 20, allow_nan=False).map(lambda days: NOW - round(days, 1) * DAY)),
    max_size=25,
)


@pytest.mark.parametrize("chunk", [retention.CHUNK, 3], ids=["chunk", "small-chunk"])
def test_retention_keeps_exactly_the_whole_requests_within_both_bounds(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # A small CHUNK makes every deletion take several transactions, with requests (rows of one time) larger than it.
    monkeypatch.setattr(retention, "CHUNK", chunk)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        drawn=requests_drawn,
        max_rows=st.one_of(st.none(), st.integers(1, 40)),
        max_days=st.one_of(st.none(), st.floats(0.5, 20)),
    )
    def check(drawn: list[tuple[int, float]], max_rows: int | None, max_days: float | None) -> None:
        requests = [(n, size, at) for n, (size, at) in enumerate(drawn)]
        insert(engine, requests)
        labelled_before = keys(engine, outcomes)
        # Independently: the newest times first, a time kept while all rows up to it fit in max_rows (the rows of
        # one time are kept or deleted together), and only times within max_days.
        times = sorted({at for _, _, at in requests}, reverse=True)
        kept_times: set[float] = set()
        count = 0
        for at in times:
            count += sum(size for _, size, t in requests if t == at)
            if max_rows is not None and count > max_rows:
                break
            if max_days is None or at > NOW - max_days * DAY:
                kept_times.add(at)
        expected = {(f"r{n}", i) for n, size, at in requests if at in kept_times for i in range(size)}
        total = sum(size for _, size, _ in requests)
        assert enforce(engine, max_rows, max_days) == total - len(expected)
        assert keys(engine, predictions) == expected
        assert keys(engine, outcomes) == labelled_before & expected

    check()
