"""Input monitoring: a window of served passengers tested against the training split (GET /monitoring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio.to_thread

from service.config import Settings
from service.monitoring.gauges import MonitoringGauges
from service.pair import ServedPair

if TYPE_CHECKING:
    from service.monitoring.monitor import Monitor
    from service.monitoring.schemas import MonitoringReport
    from service.state import AppState, Lifecycle


def start_monitor(settings: Settings, pair: ServedPair, gauges: MonitoringGauges | None) -> Monitor | None:
    """This worker's monitor, or None with MONITOR=0."""
    if not settings.monitor:
        return None
    # Imported here: nothing of monitoring is loaded with MONITOR=0.
    from service.monitoring.monitor import Monitor

    return Monitor(
        pair,
        capacity=settings.monitor_window,
        min_size=settings.monitor_min_window,
        alpha=settings.monitor_alpha,
        gauges=gauges,
    )


async def current_report(state: AppState) -> MonitoringReport | None:
    """The monitor's report now (None with MONITOR=0): on the store's window when the store is on (read in a
    thread: the same passengers on every worker and replica), else on this worker's own window."""
    monitor = state.lifecycle.monitor
    if monitor is None:
        return None
    store = state.lifecycle.store
    if store is None:
        return monitor.report()

    def from_store() -> MonitoringReport:
        recent = store.recent_inputs(monitor.window_runs)
        return monitor.report() if recent is None else monitor.report((recent.raw, recent.since))

    return await anyio.to_thread.run_sync(from_store, limiter=state.store_limiter)


def follow_swaps(lifecycle: Lifecycle) -> Callable[[ServedPair], None]:
    """A hot-swap callback: the app's monitor (`lifecycle.monitor`, if any) compares with each new run."""

    def on_swap(pair: ServedPair) -> None:
        monitor: Monitor | None = lifecycle.monitor
        if monitor is not None:
            monitor.swap(pair)

    return on_swap
