"""The application's typed state: built once by `create_app`, read through one accessor per resource.

`AppState` is frozen: what changes while the app runs lives in two small holders with one writer each,
`PairHolder` (the served pair: written only by its `publish`, which the start-up and the reloader call) and
`Lifecycle` (the drain after a SIGTERM, the monitor of the served run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio

from service.access_log import AccessLog
from service.auth import KeyRing
from service.champion import Champion
from service.config import Settings
from service.errors import ApiError
from service.pair import ServedPair
from service.telemetry import Telemetry
from survival.variants import VARIANTS

if TYPE_CHECKING:
    from service.monitoring.gauges import MonitoringGauges
    from service.monitoring.monitor import Monitor
    from service.reload import Reloader
    from service.store.metrics import StoreMetrics
    from service.store.store import Store
    from service.study_cache import StudyCache

logger = logging.getLogger("service")
Readiness = Literal["loading", "draining", "ready"]


class PairHolder:
    """The served pair, swapped by one reference assignment; a request reads `current` once, so each answer
    comes from one run."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.current: ServedPair | None = None
        self.serving_since: datetime = datetime.now(UTC)
        self._callbacks: list[Callable[[ServedPair], None]] = []

    def require(self) -> ServedPair:
        """The served pair, or 503 while none is loaded."""
        pair = self.current
        if pair is None:
            raise ApiError(503, "models are not loaded yet")
        return pair

    def on_swap(self, callback: Callable[[ServedPair], None]) -> None:
        """Call `callback(new_pair)` on every publish, before the new pair is served (and at start-up)."""
        self._callbacks.append(callback)

    def publish(self, pair: ServedPair) -> None:
        """Serve `pair`: callbacks, gauges, then one reference assignment."""
        for callback in self._callbacks:
            try:
                callback(pair)
            except Exception:  # a listener's bug must not stop the swap or leave it half done
                logger.exception("on_swap callback %r failed", callback)
        previous = self.current
        if previous is not None:
            for name in VARIANTS:
                # Set to 0 rather than removed: in multiprocess mode a value lives on in the worker's file.
                self.telemetry.model_info.labels(name, previous.run_id, previous.models[name].version).set(0)
        for name in VARIANTS:
            served = pair.models[name]
            self.telemetry.model_info.labels(name, pair.run_id, served.version).set(1)
            self.telemetry.validation_accuracy.labels(name).set(served.metadata.metrics.accuracy)
        self.serving_since = datetime.now(UTC)
        self.current = pair

    def retire(self) -> None:
        """Stop serving (the app's shutdown)."""
        self.current = None


@dataclass
class Lifecycle:
    """What changes over a worker's life besides the pair: the drain after a SIGTERM, the input monitor and the
    prediction store (opened when the app starts, closed when it stops)."""

    draining: bool = False
    monitor: Monitor | None = None
    store: Store | None = None


@dataclass(frozen=True)
class AppState:
    """Everything the app is made of, built once."""

    settings: Settings
    telemetry: Telemetry
    keys: KeyRing
    access_log: AccessLog | None
    pair: PairHolder
    reloader: Reloader
    study: StudyCache
    monitor_gauges: MonitoringGauges | None
    champion: Champion
    store_metrics: StoreMetrics | None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    # Big request bodies are handled one at a time, off the event loop.
    batch_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    # Threads that may wait on the store at once (feedback, the comparison, the champion): a slow database holds
    # these, never the threads that FastAPI's other routes and the batch work run in.
    store_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(4))

    def readiness(self) -> Readiness:
        """What the state says of taking traffic: GET /ready and /v2/health/ready."""
        if self.lifecycle.draining:
            return "draining"
        return "loading" if self.pair.current is None else "ready"


def state_of(app: Any) -> AppState:
    """The state of a service app (a Starlette app whose `state.service` `create_app` set)."""
    state: AppState = app.state.service
    return state
