"""GET /metrics (JSON for programs, the dashboard for browsers) and GET /metrics/prometheus."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from service.dashboard.render import render_dashboard
from service.deps import PairDep, StateDep, TelemetryDep
from service.monitoring import current_report
from service.negotiation import preferred
from service.pair import ServedModel, ServedPair
from service.schemas import MetricsReport, ModelMetrics
from service.store import StoreUnavailableError
from service.telemetry import EXPOSITION_TYPE
from survival.study import StudyReport

router = APIRouter(tags=["metrics"])
logger = logging.getLogger("service")

METRICS_TYPES: Final[tuple[str, ...]] = ("application/json", "text/html")
# The dashboard's scripts and styles come from /static only; the data rides in a non-executed JSON block.
DASHBOARD_CSP: Final[str] = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def training_summary(served: ServedModel) -> dict[str, Any]:
    """The run's settings as the dashboard lists them."""
    meta = served.metadata
    hyper = meta.hyperparameters
    return {
        "run_id": meta.run_id,
        "created_at": meta.created_at,
        "seed": meta.seed,
        "data_file": meta.data.file_name,
        "data_sha256": meta.data.sha256,
        "n_train": meta.data.n_train,
        "n_val": meta.data.n_val,
        "features": list(meta.preprocessing.features),
        "age_fill": meta.preprocessing.age_fill,
        "standardize": meta.preprocessing.standardize,
        "hidden": list(meta.model.hidden),
        "epochs": hyper.epochs,
        "learning_rate": hyper.learning_rate,
        "batch_size": hyper.batch_size,
        "optimizer": hyper.optimizer,
        "loss": hyper.loss,
        "threads": hyper.threads,
        "device": hyper.device,
    }


def metrics_report(pair: ServedPair, study: StudyReport | None, study_problem: str | None = None) -> MetricsReport:
    """The metrics of both served models, from their checkpoints."""
    models = {
        name: ModelMetrics(
            validation=served.metadata.metrics, curves=served.metadata.curves, training=training_summary(served)
        )
        for name, served in pair.models.items()
    }
    baseline = pair.models["batchnorm"].metadata.baseline
    return MetricsReport(models=models, baseline=baseline, study=study, study_problem=study_problem)


@router.get(
    "/metrics",
    response_model=MetricsReport,
    responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}}}},
)
async def metrics(request: Request, pair: PairDep, state: StateDep) -> Response:
    """Validation metrics of both models (JSON); a browser asking for text/html gets the dashboard."""
    study = await state.study.get()  # off the event loop, bounded in size and time
    report = metrics_report(pair, study.report, study.problem)
    headers = {"Vary": "Accept"}
    if preferred(request.headers.get("accept"), METRICS_TYPES) == "text/html":
        return HTMLResponse(render_dashboard(report), headers={**headers, "Content-Security-Policy": DASHBOARD_CSP})
    return JSONResponse(report.model_dump(mode="json"), headers=headers)


@router.get("/metrics/prometheus", response_class=Response)
async def prometheus(pair: PairDep, state: StateDep, telemetry: TelemetryDep) -> Response:
    """Operational metrics in the Prometheus text format."""
    for name, served in pair.models.items():
        telemetry.validation_accuracy.labels(name).set(served.metadata.metrics.accuracy)
    if state.lifecycle.monitor is not None:
        await current_report(state)  # sets the monitoring gauges
    store = state.lifecycle.store
    if store is not None:
        # Imported here: a worker without the store never loads it.
        from service.store.store import SCRAPE_MAX_AGE_S

        with contextlib.suppress(StoreUnavailableError):  # the gauges keep their last values; the scrape goes on
            await store.live_comparison(state.store_limiter, SCRAPE_MAX_AGE_S)
    return Response(telemetry.exposition(), media_type=EXPOSITION_TYPE)
