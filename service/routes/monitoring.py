"""GET /monitoring: is this worker's recent traffic still the data the models learned from?"""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import StateDep
from service.monitoring import current_report
from service.monitoring.schemas import MonitoringReport
from service.schemas import ErrorResponse

router = APIRouter(tags=["monitoring"])
OFF = MonitoringReport(enabled=False, alpha=None, window=None, drift=None)


@router.get(
    "/monitoring",
    response_model=MonitoringReport,
    responses={503: {"model": ErrorResponse, "description": "Models not loaded."}},
)
async def monitoring(state: StateDep) -> MonitoringReport:
    """Drift tests of the last MONITOR_WINDOW passengers against the served run's training split: those the store
    holds for the run (every worker and replica), or with STORE_URL=none this worker's own."""
    state.pair.require()  # 503 while the models (and so the reference) are not loaded
    report = await current_report(state)
    return OFF if report is None else report
