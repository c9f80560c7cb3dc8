"""Periodic work of the store's threads, and the throttle that keeps an outage from flooding the log."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import sqlalchemy as sa

from service.store.database import first_line

logger = logging.getLogger("service.store")
# At most one log line per this many seconds about one kind of failure (a write, a periodic job, a read).
LOG_EVERY_S: Final[float] = 60.0


class OncePer:
    """Says yes at most once per `seconds`: what keeps a database outage from writing a log line per attempt."""

    def __init__(self, seconds: float = LOG_EVERY_S) -> None:
        self.seconds = seconds
        self._last = -math.inf

    def ready(self) -> bool:
        """Whether a line may be written now (and if so, the next one waits `seconds`)."""
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True


@dataclass
class PeriodicJob:
    """Work a store thread runs every `every_s` seconds (its failures are logged at most once per LOG_EVERY_S,
    never raised)."""

    name: str
    every_s: float
    run: Callable[[], None]
    due: float = 0.0
    log: OncePer = field(default_factory=OncePer)


def run_job(job: PeriodicJob) -> None:
    """Run a periodic job once; a failure is logged (a database error in one line), never raised."""
    try:
        job.run()
    except sa.exc.SQLAlchemyError as exc:
        if job.log.ready():
            logger.warning(
                "prediction store: %s failed (said once per %.0f s): %s", job.name, LOG_EVERY_S, first_line(exc)
            )
    except Exception:
        if job.log.ready():
            logger.exception("prediction store: %s failed", job.name)
