"""The prediction writer (service/store/writer.py) against a real SQLite file and the real served pair: what a row
holds, that close() writes the queue, and what is dropped and counted when a request id repeats, the queue is full
or the database refuses the writes (and that it writes again once the database is back)."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from support.app import app_client

from service.config import Settings
from service.pair import ServedPair
from service.store.database import make_engine, store_url
from service.store.metrics import StoreMetrics
from service.store.records import Served
from service.store.store import ensure_schema
from service.store.tables import predictions
from service.store.writer import MAX_ATTEMPTS, PredictionWriter
from survival.variants import VARIANTS, VariantName

if TYPE_CHECKING:
    from support.postgres import PostgresServer

# Longer than any test: the writer's thread then writes only when flush() or close() wakes it.
NEVER_S: Final = 600.0
WAIT_S: Final = 30.0
PASSENGER: Final = {"pclass": 3, "fare": 7.25, "age": 22}


@pytest.fixture(scope="module")
def pair(model_dir: Path) -> ServedPair:
    """The session's trained pair, as the service serves it."""
    return ServedPair.load(model_dir)


@contextmanager
def sqlite_store(path: Path) -> Iterator[sa.Engine]:
    """The store's engine on a new SQLite file, its schema migrated."""
    url = store_url(f"sqlite:///{path}")
    assert url is not None
    engine = make_engine(url, connect_timeout_s=5)
    try:
        ensure_schema(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh store in a real SQLite file."""
    with sqlite_store(tmp_path / "s.db") as store:
        yield store


@pytest.fixture
def registry() -> CollectorRegistry:
    """The registry the writer's metrics are read from."""
    return CollectorRegistry()


@contextmanager
def writer_of(
    engine: sa.Engine, registry: CollectorRegistry, *, flush_interval_s: float = NEVER_S, queue_max: int = 10_000
) -> Iterator[PredictionWriter]:
    """A writer (its thread not started), closed at the end."""
    writer = PredictionWriter(engine, StoreMetrics(registry), flush_interval_s=flush_interval_s, queue_max=queue_max)
    try:
        yield writer
    finally:
        writer.close(WAIT_S)


def served(
    pair: ServedPair,
    request_id: str,
    raw: np.ndarray[Any, np.dtype[np.float64]],
    answered: tuple[VariantName, ...] = VARIANTS,
    passenger_ids: list[str] | None = None,
    at: float = 1_700_000_000.0,
) -> Served:
    """One answered request as the data plane hands it over: both models scored, as with the store on."""
    return Served(request_id, at, raw, pair.predict(raw, VARIANTS), answered, pair, passenger_ids)


def passengers(rows: int, pclass: float = 3.0) -> np.ndarray[Any, np.dtype[np.float64]]:
    """`rows` distinct passengers."""
    return np.array([[pclass, 7.0 + i, 20.0 + i] for i in range(rows)])


def stored(engine: sa.Engine, request_id: str | None = None) -> list[dict[str, Any]]:
    """The stored predictions (of one request), in order."""
    query = sa.select(predictions).order_by(predictions.c.request_id, predictions.c.row_index)
    if request_id is not None:
        query = query.where(predictions.c.request_id == request_id)
    with engine.connect() as connection:
        return [row._asdict() for row in connection.execute(query)]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0 when it was never set."""
    return registry.get_sample_value(name, labels) or 0.0


def dropped(registry: CollectorRegistry, reason: str) -> float:
    """store_dropped_total{reason}."""
    return sample(registry, "store_dropped_total", reason=reason)


fares = st.one_of(st.none(), st.floats(0, 512, allow_nan=False))
ages = st.one_of(st.none(), st.floats(0.5, 80, allow_nan=False))
rows_drawn = st.lists(st.tuples(st.integers(1, 3), fares, ages), min_size=1, max_size=12)
answered_drawn = st.sampled_from([VARIANTS, ("batchnorm",), ("plain",)])


def test_a_row_holds_the_inputs_as_received_and_as_filled_both_probabilities_and_its_run(
    pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry
) -> None:
    prep = pair.models["batchnorm"].metadata.preprocessing
    assert pair.models["plain"].metadata.preprocessing == prep
    ids = (f"req-{n}" for n in itertools.count())
    with writer_of(engine, registry) as writer:
        writer.start()

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(rows=rows_drawn, answered=answered_drawn, with_ids=st.booleans())
        def check(
            rows: list[tuple[int, float | None, float | None]], answered: tuple[VariantName, ...], with_ids: bool
        ) -> None:
            raw = np.array([[c, math.nan if f is None else f, math.nan if a is None else a] for c, f, a in rows])
            request_id = next(ids)
            passenger_ids = [str(900 + i) for i in range(len(rows))] if with_ids else None
            writer.record(served(pair, request_id, raw, answered, passenger_ids, at=1234.5))
            assert writer.flush(WAIT_S)
            got = stored(engine, request_id)
            assert [r["row_index"] for r in got] == list(range(len(rows)))
            alone = {name: pair.models[name].predict_proba(raw) for name in VARIANTS}  # each model by itself
            for i, (row, (pclass, fare, age)) in enumerate(zip(got, rows, strict=True)):
                assert row["at"] == 1234.5
                assert (row["pclass"], row["fare"], row["age"]) == (pclass, fare, age)  # missing stays NULL
                assert row["fare_filled"] == (prep.fare_fill[pclass - 1] if fare is None else fare)
                assert row["age_filled"] == (prep.age_fill if age is None else age)
                assert row["p_batchnorm"] == pytest.approx(alone["batchnorm"][i], abs=1e-12)
                assert row["p_plain"] == pytest.approx(alone["plain"][i], abs=1e-12)
                assert row["answered"] == ("both" if len(answered) == 2 else answered[0])
                assert row["run_id"] == pair.run_id
                assert row["passenger_id"] == (passenger_ids[i] if passenger_ids else None)

        check()
    with engine.connect() as connection:
        runs = connection.exec_driver_sql("SELECT run_id, version_batchnorm, version_plain FROM runs").all()
    assert runs == [(pair.run_id, pair.models["batchnorm"].version, pair.models["plain"].version)]
    written = sum(1 for _ in stored(engine))
    assert sample(registry, "store_written_total") == written > 0
    assert sample(registry, "store_queue_depth") == 0


def test_close_writes_everything_queued(pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry) -> None:
    sizes = [1, 7, 3, 250, 2]
    with writer_of(engine, registry) as writer:
        writer.start()  # it would not write on its own before NEVER_S
        for n, size in enumerate(sizes):
            writer.record(served(pair, f"close-{n}", passengers(size)))
        assert writer.depth == sum(sizes)
        assert stored(engine) == []
        writer.close(WAIT_S)
        assert writer.depth == 0
    got = stored(engine)
    assert sorted({(r["request_id"], r["row_index"]) for r in got}) == sorted(
        (f"close-{n}", i) for n, size in enumerate(sizes) for i in range(size)
    )
    assert sample(registry, "store_written_total") == sum(sizes)
    assert sample(registry, "store_queue_depth") == 0


@pytest.mark.parametrize("same_batch", [True, False], ids=["same-batch", "later-batch"])
def test_a_request_id_used_twice_keeps_the_first_and_counts_the_second(
    pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry, same_batch: bool
) -> None:
    first, second = passengers(3, pclass=1), passengers(3, pclass=2)
    with writer_of(engine, registry) as writer:
        writer.record(served(pair, "twice", first, answered=("plain",)))
        writer.record(served(pair, "other", first))
        if not same_batch:
            writer.start()
            assert writer.flush(WAIT_S)
        writer.record(served(pair, "twice", second, answered=("batchnorm",)))
        if same_batch:
            writer.start()
        assert writer.flush(WAIT_S)
        got = stored(engine, "twice")
        assert [(r["pclass"], r["fare"], r["answered"]) for r in got] == [(1, f, "plain") for f in first[:, 1]]
        assert dropped(registry, "duplicate_id") == 3
        assert sample(registry, "store_written_total") == 6
        # The writer goes on.
        writer.record(served(pair, "after", second))
        assert writer.flush(WAIT_S)
        assert len(stored(engine, "after")) == 3


@pytest.mark.parametrize("same_batch", [True, False])
def test_a_longer_second_request_under_a_used_id_adds_none_of_its_rows(
    pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry, same_batch: bool
) -> None:
    with writer_of(engine, registry) as writer:
        writer.record(served(pair, "reused", passengers(2, pclass=1)))
        if not same_batch:
            writer.start()
            assert writer.flush(WAIT_S)
        writer.record(served(pair, "reused", passengers(5, pclass=2)))
        if same_batch:
            writer.start()
        assert writer.flush(WAIT_S)
        # Row by row, rows 2 to 4 of the second request would be new keys under the first's id.
        assert [r["pclass"] for r in stored(engine, "reused")] == [1, 1]
        assert dropped(registry, "duplicate_id") == 5


def test_the_app_counts_a_reused_x_request_id_as_a_duplicate(model_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model_dir=model_dir, store_url=f"sqlite:///{tmp_path}/s.db")
    with app_client(settings) as client:
        registry = client.app.state.service.telemetry.registry  # type: ignore[attr-defined]
        one = {"passengers": [PASSENGER, PASSENGER]}
        other = {"passengers": [{"pclass": 1, "fare": 80.0, "age": 40}, {"pclass": 1, "fare": 80.0, "age": 40}]}
        for body in (one, other):
            answer = client.post("/predict", json=body, headers={"X-Request-ID": "reused"})
            assert answer.status_code == 200  # the answer goes out either way
            assert [p["id"] for p in answer.json()["predictions"]] == ["reused/0", "reused/1"]
        store = client.app.state.service.lifecycle.store  # type: ignore[attr-defined]
        assert store.writer.flush(WAIT_S)
        assert sample(registry, "store_dropped_total", reason="duplicate_id") == 2
        assert sample(registry, "store_written_total") == 2
    with sqlite_store(tmp_path / "s.db") as engine:
        assert [r["pclass"] for r in stored(engine)] == [3, 3]


def test_past_the_queue_bound_requests_are_dropped_and_counted_without_waiting(
    pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry
) -> None:
    with writer_of(engine, registry, queue_max=10) as writer:
        # The thread is not started: record() cannot be waiting for it, or for the database.
        for request_id, rows in [("a", 6), ("b", 5), ("c", 4), ("d", 1)]:
            writer.record(served(pair, request_id, passengers(rows)))
        assert writer.depth == 10
        assert dropped(registry, "queue_full") == 6  # b and d
        writer.start()
        assert writer.flush(WAIT_S)
        assert {r["request_id"] for r in stored(engine)} == {"a", "c"}
        assert sample(registry, "store_written_total") == 10
        # Written, the queue has room again.
        writer.record(served(pair, "e", passengers(10)))
        assert writer.flush(WAIT_S)
        assert len(stored(engine, "e")) == 10
        assert dropped(registry, "queue_full") == 6


def test_a_refused_write_is_retried_then_dropped_and_the_writer_writes_again_once_the_database_is_back(
    pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="service.store")
    with writer_of(engine, registry, flush_interval_s=0.01) as writer:
        writer.start()
        writer.record(served(pair, "before", passengers(2)))
        assert writer.flush(WAIT_S)
        with engine.begin() as connection:
            predictions.drop(connection)  # every INSERT now fails
        writer.record(served(pair, "lost", passengers(3)))
        assert writer.flush(WAIT_S)  # done: given up after MAX_ATTEMPTS
        assert dropped(registry, "write_failed") == 3
        assert sample(registry, "store_written_total") == 2
        assert writer.depth == 0
        # Logged once for the interval, not once per attempt.
        failures = [r.getMessage() for r in caplog.records if "a write failed" in r.getMessage()]
        assert len(failures) == 1, failures
        assert f"(attempt 1 of {MAX_ATTEMPTS})" in failures[0]
        assert "no such table: predictions" in failures[0]
        with engine.begin() as connection:
            predictions.create(connection)  # the database is back
        writer.record(served(pair, "after", passengers(4)))
        assert writer.flush(WAIT_S)
        assert [r["request_id"] for r in stored(engine)] == ["after"] * 4
        assert sample(registry, "store_written_total") == 6
        assert dropped(registry, "write_failed") == 3


def test_a_write_that_fails_fewer_than_max_attempts_times_is_written_later(
    pair: ServedPair, engine: sa.Engine, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="service.store")
    with writer_of(engine, registry) as writer:  # writes only when flush() wakes it
        writer.start()
        with engine.begin() as connection:
            predictions.drop(connection)
        writer.record(served(pair, "late", passengers(3)))
        assert not writer.flush(0.5)  # one attempt failed; the rows wait for the next wake-up
        assert writer.depth == 3
        with engine.begin() as connection:
            predictions.create(connection)
        assert writer.flush(WAIT_S)
        assert len(stored(engine, "late")) == 3
        assert dropped(registry, "write_failed") == 0
        assert sample(registry, "store_written_total") == 3
    assert any(f"(attempt 1 of {MAX_ATTEMPTS})" in r.getMessage() for r in caplog.records)


@pytest.mark.system  # a private PostgreSQL server, stopped and started again
def test_on_postgresql_duplicates_are_counted_and_a_stopped_server_costs_only_its_own_rows(
    pair: ServedPair, postgres_server: PostgresServer, postgres_url: str, registry: CollectorRegistry
) -> None:
    url = store_url(postgres_url)
    assert url is not None
    engine = make_engine(url, connect_timeout_s=2)
    try:
        ensure_schema(engine)
        with writer_of(engine, registry, flush_interval_s=0.05) as writer:
            writer.start()
            writer.record(served(pair, "pg", passengers(2)))
            writer.record(served(pair, "pg", passengers(2, pclass=1)))
            assert writer.flush(WAIT_S)
            assert [r["pclass"] for r in stored(engine)] == [3, 3]
            assert dropped(registry, "duplicate_id") == 2
            postgres_server.stop("fast")
            try:
                writer.record(served(pair, "down", passengers(4)))
                assert writer.flush(WAIT_S)
                assert dropped(registry, "write_failed") == 4
            finally:
                postgres_server.start()
            writer.record(served(pair, "up", passengers(5)))
            assert writer.flush(WAIT_S)
            assert sample(registry, "store_written_total") == 2 + 5
        assert sorted({r["request_id"] for r in stored(engine)}) == ["pg", "up"]
    finally:
        engine.dispose()
