"""GET /monitoring: is this worker's recent traffic still the data the models learned from?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from service.deps import StateDep
from service.monitoring.schemas import MonitoringReport
from service.schemas import ErrorResponse

if TYPE_CHECKING:
    from service.monitoring.monitor import Monitor

router = APIRouter(tags=["monitoring"])
OFF = MonitoringReport(enabled=False, alpha=None, window=None, drift=None)


@router.get(
    "/monitoring",
    response_model=MonitoringReport,
    responses={503: {"model": ErrorResponse, "description": "Models not loaded."}},
)
async def monitoring(state: StateDep) -> MonitoringReport:
    """Drift tests of this worker's last MONITOR_WINDOW passengers against the served run's training split."""
    state.pair.require()  # 503 while the models (and so the reference) are not loaded
    monitor: Monitor | None = state.lifecycle.monitor
    return OFF if monitor is None else monitor.report()
