"""One worker's queue of answered requests and the thread that writes them to the store in batches.

A request only appends to a deque (`record`); nothing on the event loop waits for the database. The thread wakes
every STORE_FLUSH_INTERVAL_S, writes what is queued in one transaction, and also runs the store's periodic jobs
(the champion's poll). When the database is slow or down the answers still go out: the queue is bounded
in rows, a failed batch is retried a few times, and what is given up is counted (`store_dropped_total`) and logged
at most once per LOG_EVERY_S.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Final

import sqlalchemy as sa

from service.store.database import first_line, placeholder
from service.store.jobs import LOG_EVERY_S, PeriodicJob, run_job
from service.store.metrics import StoreMetrics
from service.store.records import PREDICTION_COLUMNS, Served, prediction_rows

logger = logging.getLogger("service.store")
# A batch the database refused is tried this many times (one flush interval apart) before it is dropped.
MAX_ATTEMPTS: Final[int] = 3
# Rows per INSERT transaction: bounds one transaction's size (and a SQLite writer's lock) after a backlog.
ROWS_PER_TRANSACTION: Final[int] = 20_000
# Rows per INSERT statement: 13 values each stay under SQLite's (32,766) and PostgreSQL's (65,535) parameter limits.
ROWS_PER_STATEMENT: Final[int] = 500
# Request ids per IN (...) list when looking for ids already recorded: under SQLite's and PostgreSQL's limits.
IDS_PER_QUERY: Final[int] = 500


@dataclass
class Pending:
    """Rows taken from the queue and not yet written, with the attempts made so far."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    request_ids: set[str] = field(default_factory=set)
    # Rows of a request whose id came earlier in the same batch (a client that reused its X-Request-ID).
    skipped: int = 0
    attempts: int = 0


class PredictionWriter:
    """Queues answered requests (event loop) and writes them in batches (its own thread)."""

    def __init__(self, engine: sa.Engine, metrics: StoreMetrics, *, flush_interval_s: float, queue_max: int) -> None:
        self.engine = engine
        self.metrics = metrics
        self.flush_interval_s = flush_interval_s
        self.queue_max = queue_max
        self.jobs: list[PeriodicJob] = []
        self._queue: deque[Served] = deque()
        # Rows accepted (written by the event loop only) and rows finished, written or dropped (by the writer
        # only): each counter has one writer, so the depth needs no lock on the request's path.
        self._accepted = 0
        self._finished = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._pending = Pending()
        self._known_runs: set[str] = set()
        self._unreported: dict[str, int] = {}
        self._last_report = 0.0
        self._sql = insert_statements(engine)
        self._statements: dict[int, str] = {}
        self._mark = placeholder(engine)
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    @property
    def depth(self) -> int:
        """Rows accepted and not yet written or dropped."""
        return self._accepted - self._finished

    def record(self, served: Served) -> None:
        """Queue one answered request (on the event loop: an append, or a count when the queue is full)."""
        if self.depth + served.rows > self.queue_max:
            self._drop("queue_full", served.rows)
            return
        self._accepted += served.rows
        self._queue.append(served)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every row accepted before the call is written or dropped; False when the wait ran out."""
        target = self._accepted
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while self._finished < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(left, self.flush_interval_s))
        return True

    def close(self, timeout_s: float) -> None:
        """Write what is queued and stop the thread (SIGTERM); what is still queued after `timeout_s` is logged."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.depth:
            logger.error("prediction store: %d predictions were not written before the exit", self.depth)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.metrics.queue_depth.set(self.depth)  # what piled up since the last wake-up
            stopping = self._stop.is_set()
            try:
                self._write_queued(final=stopping)
                self._run_jobs()
            except Exception:
                # A bug here must not end the thread: the queue would fill and every later prediction be dropped.
                logger.exception("prediction store: the writer failed; it goes on with the next batch")
                self._finish(self._pending, 0, "write_failed")
            if stopping:
                return

    def _write_queued(self, *, final: bool) -> None:
        # Rows a failed write left are sent again first; at the exit (`final`) every batch is tried until it is
        # written or dropped, otherwise a failed one waits for the next wake-up. Only what was queued at the wake-up
        # is taken: requests keep arriving while a batch is written, and chasing them would turn one transaction
        # per interval into a stream of small ones, each paying a transaction's fixed cost (bench/bench_store.py,
        # part 4 counts the writes).
        queued = len(self._queue) if not final else None
        while True:
            pending = self._pending
            batch: list[Served] = []
            size = len(pending.rows)
            while self._queue and size < ROWS_PER_TRANSACTION and (queued is None or queued > 0):
                if queued is not None:
                    queued -= 1
                served = self._queue.popleft()
                if served.request_id in pending.request_ids:
                    pending.skipped += served.rows
                    continue
                pending.request_ids.add(served.request_id)
                batch.append(served)
                size += served.rows
                run_id = served.pair.run_id
                if run_id not in self._known_runs:
                    models = served.pair.models
                    pending.runs[run_id] = (models["batchnorm"].version, models["plain"].version)
            if batch:
                pending.rows.extend(prediction_rows(batch))
            if not pending.rows:
                return
            if not self._write(pending) and not final:
                return

    def _write(self, pending: Pending) -> bool:
        start = time.perf_counter()
        try:
            with self.engine.begin() as connection:
                for run_id, (bn, plain) in pending.runs.items():
                    connection.exec_driver_sql(self._sql.run, (run_id, bn, plain, time.time()))
                # A request id already recorded keeps its first request's rows, all of them and nothing of the
                # second (row by row, a longer second request would add its extra rows under the first's id).
                taken = self._recorded(connection, pending.request_ids)
                rows = [row for row in pending.rows if row[0] not in taken] if taken else pending.rows
                inserted = self._insert(connection, rows)
        except sa.exc.SQLAlchemyError as exc:
            pending.attempts += 1
            if pending.attempts < MAX_ATTEMPTS:
                self._report(f"a write failed (attempt {pending.attempts} of {MAX_ATTEMPTS}): {first_line(exc)}")
                return False
            self._report(f"a write failed {MAX_ATTEMPTS} times, its predictions are dropped: {first_line(exc)}")
            self._finish(pending, 0, "write_failed")
            return False
        self.metrics.write_seconds.observe(time.perf_counter() - start)
        self._known_runs.update(pending.runs)
        self._finish(pending, inserted if inserted >= 0 else len(pending.rows), "duplicate_id")
        return True

    def _insert(self, connection: sa.Connection, rows: list[tuple[Any, ...]]) -> int:
        """Insert the rows, ROWS_PER_STATEMENT to one multi-row INSERT; how many were new.

        Not executemany: SQLite's driver releases and takes back the interpreter lock for every row it steps, and
        each time it takes it back the event loop must yield it. One statement per few hundred rows hands the lock
        over a few hundred times less often, and binds its values in C (bench/bench_store.py, part 1).
        """
        inserted = 0
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            part = rows[start : start + ROWS_PER_STATEMENT]
            sql = self._statements.get(len(part))
            if sql is None:
                sql = self._statements[len(part)] = self._sql.prediction_rows(len(part))
            inserted += connection.exec_driver_sql(sql, tuple(chain.from_iterable(part))).rowcount
        return inserted

    def _recorded(self, connection: sa.Connection, request_ids: set[str]) -> set[str]:
        """Which of these request ids the store already holds (their first row, by the primary key)."""
        ids = list(request_ids)
        found: set[str] = set()
        for start in range(0, len(ids), IDS_PER_QUERY):
            part = ids[start : start + IDS_PER_QUERY]
            query = self._sql.recorded % ", ".join([self._mark] * len(part))
            found.update(row[0] for row in connection.exec_driver_sql(query, tuple(part)))
        return found

    def _finish(self, pending: Pending, written: int, reason: str) -> None:
        rows = len(pending.rows) + pending.skipped
        self.metrics.written.inc(written)
        if written < rows:
            self._drop(reason, rows - written)
        self._pending = Pending()
        with self._progress:
            self._finished += rows
            self._progress.notify_all()
        self.metrics.queue_depth.set(self.depth)

    def _drop(self, reason: str, rows: int) -> None:
        self.metrics.dropped.labels(reason).inc(rows)
        self._unreported[reason] = self._unreported.get(reason, 0) + rows

    def _report(self, problem: str | None = None) -> None:
        now = time.monotonic()
        if now - self._last_report < LOG_EVERY_S:
            return
        self._last_report = now
        dropped = ", ".join(f"{n} ({reason})" for reason, n in self._unreported.items())
        self._unreported = {}
        logger.warning(
            "prediction store: %s; dropped since the last report: %s; answers still go out",
            problem or "writing again",
            dropped or "none",
        )

    def _run_jobs(self) -> None:
        now = time.monotonic()
        if self._unreported:
            self._report()
        self.metrics.queue_depth.set(self.depth)
        for job in self.jobs:
            if now < job.due:
                continue
            job.due = now + job.every_s
            run_job(job)


@dataclass(frozen=True)
class InsertStatements:
    """The writer's statements, written for the engine's driver."""

    prediction: str  # one row: `VALUES (...)` is its last part
    run: str

    def prediction_rows(self, rows: int) -> str:
        """The prediction INSERT with `rows` value lists."""
        head, _, tail = self.prediction.partition(" VALUES ")
        one, _, conflict = tail.partition(")")
        return f"{head} VALUES {', '.join([one + ')'] * rows)}{conflict}"

    # `%s` takes the list of markers.
    recorded: str = "SELECT request_id FROM predictions WHERE row_index = 0 AND request_id IN (%s)"


def insert_statements(engine: sa.Engine) -> InsertStatements:
    """INSERTs that skip a row whose key exists (a request id a client used twice; a run another worker wrote)."""
    mark = placeholder(engine)

    def insert(table: str, columns: tuple[str, ...]) -> str:
        values = ", ".join([mark] * len(columns))
        if engine.dialect.name == "sqlite":
            return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({values})"
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) ON CONFLICT DO NOTHING"

    return InsertStatements(
        prediction=insert("predictions", PREDICTION_COLUMNS),
        run=insert("runs", ("run_id", "version_batchnorm", "version_plain", "first_served_at")),
    )
