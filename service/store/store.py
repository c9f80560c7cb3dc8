"""The store as the app uses it: open (engine, schema check, writer), record, feedback, read, switch, close."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import anyio.to_thread
import numpy as np
import sqlalchemy as sa

from service.champion import AnswerMode, Champion, answer_mode
from service.comparison.report import LabelledPairs, UnlabelledPairs, comparison_report
from service.comparison.schemas import ComparisonReport
from service.config import Settings
from service.errors import ApiError
from service.store import StoreUnavailableError, control, retention
from service.store.database import StoreError, first_line, make_engine, shown, store_url
from service.store.jobs import OncePer, PeriodicJob, run_job
from service.store.metrics import StoreMetrics
from service.store.outcomes import UNKNOWN, Recorded, record_outcomes
from service.store.reads import RecentInputs, comparison_rows, recent_inputs
from service.store.records import Outcome, Served
from service.store.tables import SCHEMA_REVISION
from service.store.writer import PredictionWriter
from survival.variants import VARIANTS

logger = logging.getLogger("service.store")
RETENTION_EVERY_S: Final[float] = 300.0
# The first pass soon after start (a restart after a long stop may find a store well over its bounds).
RETENTION_FIRST_S: Final[float] = 10.0
# GET /comparison reuses a comparison this recent instead of reading the store again; a scrape, one up to
# SCRAPE_MAX_AGE_S old (the gauges move with outcomes, which come back over hours, not seconds).
COMPARISON_MAX_AGE_S: Final[float] = 1.0
SCRAPE_MAX_AGE_S: Final[float] = 30.0
# A concurrent writer may hold SQLite's lock past its busy timeout; an outcome write is tried this many times.
FEEDBACK_ATTEMPTS: Final[int] = 3


@dataclass
class Store:
    """One worker's handle on the store."""

    engine: sa.Engine
    writer: PredictionWriter
    metrics: StoreMetrics
    champion: Champion
    settings: Settings
    _comparison_lock: anyio.Lock = field(default_factory=anyio.Lock)
    _last_comparison: tuple[float, ComparisonReport] | None = None
    _closing: threading.Event = field(default_factory=threading.Event)
    _window_log: OncePer = field(default_factory=OncePer)

    def start(self) -> None:
        """Start the writer's thread (with the champion's poll) and retention's own thread."""
        settings = self.settings
        self.writer.jobs = [PeriodicJob("reading the champion", settings.control_poll_s, self.follow_champion)]
        self.writer.start()
        if settings.store_retention_rows is not None or settings.store_retention_days is not None:
            # Its own thread: a long delete never delays the writer's next batch.
            threading.Thread(target=self._retain, name="store-retention", daemon=True).start()

    def _retain(self) -> None:
        job = PeriodicJob("retention", RETENTION_EVERY_S, self.enforce_retention)
        wait = RETENTION_FIRST_S
        while not self._closing.wait(wait):
            run_job(job)
            wait = job.every_s

    def record(self, served: Served) -> None:
        """Queue one answered request (on the event loop)."""
        self.writer.record(served)

    def follow_champion(self) -> None:
        """Answer with the champion the store names (its thread; every worker and replica polls)."""
        stored = control.read_setting(self.engine, control.CHAMPION)
        mode = answer_mode(stored) if stored is not None else None
        if mode is not None and self.champion.set(mode):
            logger.info("answering with %s (the champion in the store)", mode)
        self.show_champion()

    def switch_champion(self, mode: AnswerMode) -> None:
        """Make `mode` the champion of every worker and replica (in a thread); this worker follows at once.
        StoreUnavailableError when the store cannot be written (nothing changed)."""
        try:
            control.write_setting(self.engine, control.CHAMPION, mode)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailableError(first_line(exc)) from None
        self.champion.set(mode)
        self.show_champion()

    def show_champion(self) -> None:
        """The answer_champion gauge: 1 for each model answering /predict now."""
        for name in VARIANTS:
            self.metrics.champion.labels(name).set(1 if name in self.champion.names else 0)

    def enforce_retention(self) -> None:
        """Delete what STORE_RETENTION_ROWS / _DAYS no longer keep."""
        deleted = retention.enforce(
            self.engine, self.settings.store_retention_rows, self.settings.store_retention_days, time.time()
        )
        if deleted:
            logger.info("prediction store: retention deleted %d predictions", deleted)

    def feedback(self, given: list[Outcome]) -> Recorded:
        """Record outcomes atomically (in a thread); ApiError naming each problem, nothing recorded."""
        # This worker's own queue first, so a prediction answered a moment ago is found.
        self.writer.flush(self.settings.store_flush_interval_s * 4)
        waited = False
        for attempt in range(1, FEEDBACK_ATTEMPTS + 1):
            try:
                recorded = record_outcomes(self.engine, given)
            except ApiError as exc:
                if waited or exc.status != 422 or not all(e.message.startswith(UNKNOWN) for e in exc.errors):
                    raise
                # Another worker's queue may still hold them: one flush interval later they are written.
                waited = True
                time.sleep(self.settings.store_flush_interval_s * 2)
                continue
            except sa.exc.IntegrityError:
                raise ApiError(409, "another request recorded outcomes for the same predictions; send again") from None
            except sa.exc.OperationalError as exc:
                if attempt == FEEDBACK_ATTEMPTS:
                    logger.warning("prediction store: an outcome write failed: %s", first_line(exc))
                    unavailable = "the prediction store is unavailable; nothing was recorded, send again"
                    raise ApiError(503, unavailable) from None
                continue
            self.metrics.outcomes.inc(recorded.labelled)
            self._last_comparison = None  # this worker's next comparison counts them
            return recorded
        raise ApiError(503, "the prediction store is busy; nothing was recorded, send again")

    def comparison(self) -> ComparisonReport:
        """The live comparison over the whole store now (in a thread), and its gauges set from it;
        StoreUnavailableError when the store cannot be read."""
        try:
            rows = comparison_rows(self.engine, self.settings.comparison_window)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailableError(first_line(exc)) from None
        report = comparison_report(
            LabelledPairs(rows.labelled_batchnorm, rows.labelled_plain, rows.survived.astype(np.int8)),
            UnlabelledPairs(rows.unlabelled_batchnorm, rows.unlabelled_plain),
            rows.n_predictions,
            self.settings.comparison_window,
        )
        self.show_comparison(report)
        return report

    async def live_comparison(
        self, limiter: anyio.CapacityLimiter, max_age_s: float = COMPARISON_MAX_AGE_S
    ) -> ComparisonReport:
        """The comparison, computed by this worker at most once per `max_age_s` however many ask (a client polling
        it in a loop costs one computation a second, not one per request)."""
        async with self._comparison_lock:
            last = self._last_comparison
            if last is not None and time.monotonic() - last[0] < max_age_s:
                return last[1]
            report = await anyio.to_thread.run_sync(self.comparison, limiter=limiter)
            self._last_comparison = (time.monotonic(), report)
            return report

    def show_comparison(self, report: ComparisonReport) -> None:
        """The comparison's Prometheus gauges (NaN where the report has no value yet)."""
        metrics, paired = self.metrics, report.paired
        metrics.labelled.set(report.n_labelled)
        for name, scores in report.models.items():
            metrics.accuracy.labels(name).set(nan_if_none(scores.accuracy))
        metrics.difference.set(nan_if_none(paired.accuracy_difference))
        low, high = paired.confidence_sequence or (math.nan, math.nan)
        metrics.sequence.labels("lower").set(low)
        metrics.sequence.labels("upper").set(high)
        metrics.mcnemar_p.set(nan_if_none(paired.mcnemar_p))

    def recent_inputs(self, run_ids: tuple[str, ...]) -> RecentInputs | None:
        """The monitoring window (the runs' last MONITOR_WINDOW passengers), read from the store (in a thread); None
        when the store cannot be read (logged), and the worker's own window stands in."""
        self.writer.flush(self.settings.store_flush_interval_s * 4)  # this worker's latest passengers count too
        try:
            return recent_inputs(self.engine, run_ids, self.settings.monitor_window)
        except sa.exc.SQLAlchemyError as exc:
            if self._window_log.ready():
                logger.warning("prediction store: cannot read the monitoring window: %s", first_line(exc))
            return None

    def close(self, timeout_s: float) -> None:
        """Write what is queued (SIGTERM), then release the connections."""
        self._closing.set()
        self.writer.close(timeout_s)
        self.engine.dispose()


def nan_if_none(value: float | None) -> float:
    """A gauge's value: NaN for a number the report does not have yet."""
    return math.nan if value is None else value


def schema_version(engine: sa.Engine) -> str | None:
    """The revision Alembic recorded in the database (None: an empty database)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        version: str | None = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return version


def ensure_schema(engine: sa.Engine) -> str:
    """Bring the schema to this code's version when it is not there (Alembic, locked); a word on what it did."""
    try:
        if schema_version(engine) == SCHEMA_REVISION:
            return "ready"
        from service.store.migrate import upgrade  # Alembic is imported only when there is a migration to run

        # Read again under the migration's lock: another process may have migrated while this one waited.
        before = upgrade(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"STORE_URL={shown(engine.url)}: cannot reach the store: {first_line(exc)}") from None
    return "ready" if before == SCHEMA_REVISION else f"schema {before or 'empty'} -> {SCHEMA_REVISION}"


def prepare(settings: Settings) -> str | None:
    """Check STORE_URL and bring the schema to this code's version (the launcher, once, before any worker); a
    line saying what it did, or None when recording is off. StoreError with one line when it cannot."""
    url = store_url(settings.store_url)
    if url is None:
        return None
    engine = make_engine(url, settings.store_connect_timeout_s)
    try:
        change = ensure_schema(engine)
    finally:
        engine.dispose()
    return f"prediction store at {shown(url)} ({change})"


def open_store(settings: Settings, metrics: StoreMetrics, champion: Champion) -> Store | None:
    """This worker's store (None with STORE_URL=none); StoreError when it cannot be reached or migrated."""
    url = store_url(settings.store_url)
    if url is None:
        return None
    engine = make_engine(url, settings.store_connect_timeout_s)
    try:
        # The launcher migrated already; `uvicorn service.main:app` and tests may come here first.
        ensure_schema(engine)
    except StoreError:
        engine.dispose()
        raise
    writer = PredictionWriter(
        engine, metrics, flush_interval_s=settings.store_flush_interval_s, queue_max=settings.store_queue_max
    )
    return Store(engine=engine, writer=writer, metrics=metrics, champion=champion, settings=settings)
