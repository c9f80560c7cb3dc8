"""The FastAPI app: create_app() wires settings, models (loaded in the lifespan), routes and error handlers.

Run with `uvicorn service.main:app`; settings come from environment variables (see service/config.py).
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from threadpoolctl import threadpool_limits

from service.access_log import AccessLog
from service.apidocs import install_docs
from service.auth import KeyCheck, KeyRing
from service.config import Settings, SettingsError, get_settings
from service.errors import install_error_handlers
from service.head import HeadAsGetMiddleware
from service.monitoring import follow_swaps, start_monitor
from service.monitoring.gauges import MonitoringGauges
from service.registry import Registry
from service.reload import Reloader, polling
from service.routes import admin, health, metrics, models, monitoring, predict, runs
from service.schemas import Passenger, PassengerBatch
from service.server.lifecycle import fail_start, install_drain
from service.telemetry import Telemetry, TelemetryMiddleware
from service.v2 import routes as v2_routes
from service.version import package_version
from survival.checkpoint import CheckpointError
from survival.study import STUDY_FILE

logger = logging.getLogger("service")
STATIC_DIR = Path(__file__).resolve().parent / "dashboard" / "static"
DESCRIPTION = """Survival predictions from two versions of the same network, trained under identical conditions:
`batchnorm` (Linear -> BatchNorm1d -> ReLU) and `plain` (Linear -> ReLU). Both answer by default.
Validation metrics and the training curves are at `GET /metrics` (a dashboard in a browser)."""


def create_app(
    settings: Settings | None = None, *, exit_on_load_error: bool = False, freeze_heap: bool = False
) -> FastAPI:
    """Build the app; the models load when it starts (lifespan), not at import.

    With `exit_on_load_error` a bad checkpoint ends the process with one line on stderr and a
    non-zero status (what a server should do); without it the CheckpointError propagates (tests).
    With `freeze_heap` (a server process) what start-up allocated is frozen out of the garbage collector.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threadpool_limits(settings.compute_threads, user_api="blas")
        sys.setswitchinterval(predict.GIL_SWITCH_INTERVAL_S)
        try:
            app.state.registry = Registry.load(settings.model_dir)
        except CheckpointError as exc:
            if not exit_on_load_error:
                raise
            # One clear line instead of the traceback that an exception here would print.
            fail_start(f"cannot load the models: {exc}")
        registry: Registry = app.state.registry
        app.state.monitor = start_monitor(settings, registry, app.state.monitor_gauges)
        app.state.reloader.start_serving(registry)
        if freeze_heap:
            # A full (generation 2) collection walks every tracked object, and after start-up the app and its
            # libraries hold about 80,000: one took 85 ms here, in the middle of a big batch, and every request
            # of the worker waited (the single-passenger p99 under batches, bench/bench_mixed.py). They live as
            # long as the process, so they are frozen once (gc.freeze) and never walked again. Not in tests,
            # which build many apps in one process and need theirs collected.
            gc.collect()
            gc.freeze()
        logger.info("serving run %s from %s", registry.run_id, settings.model_dir)
        install_drain(app.state, min(settings.drain_s, settings.graceful_timeout_s))
        async with polling(app.state.reloader, settings.reload_poll_s):
            yield
        app.state.registry = None
        app.state.telemetry.retire()
        app.state.monitor = None

    telemetry = Telemetry()
    keys = KeyRing.from_settings(settings)
    # With keys configured every route checks them (a dependency, so a refusal is counted under its route).
    checks = [Depends(KeyCheck(keys, settings.metrics_need_key, telemetry))] if keys.enabled else []
    app = FastAPI(
        title="Titanic survival: BatchNorm vs plain",
        version=package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
        # Starlette's trailing-slash redirect builds its Location from the client's Host header; no route
        # here ends in a slash, so a path that does is a plain 404 instead of a redirect anywhere.
        redirect_slashes=False,
        dependencies=checks,
    )
    app.state.settings = settings
    app.state.registry = None
    app.state.draining = False
    app.state.telemetry = telemetry
    app.state.batch_limiter = anyio.CapacityLimiter(1)  # big request bodies are handled one at a time, off the loop
    app.state.monitor = None
    # Gauges are registered once per app (a lifespan may run more than once, in tests).
    app.state.monitor_gauges = MonitoringGauges(app.state.telemetry.registry) if settings.monitor else None
    app.state.reloader = Reloader(app, settings.model_dir, app.state.telemetry)
    app.state.reloader.on_swap(follow_swaps(app.state))
    app.state.study = metrics.StudyCache(settings.model_dir / STUDY_FILE)
    install_error_handlers(app)
    if keys.admin:
        app.include_router(admin.router)  # /admin/... exists only when someone may call it
    access_log = AccessLog(settings.log_format) if settings.access_log else None
    app.add_middleware(TelemetryMiddleware, telemetry=app.state.telemetry, access_log=access_log)
    app.add_middleware(HeadAsGetMiddleware)
    for module in (predict, health, models, metrics, monitoring, runs):
        app.include_router(module.router)
    app.include_router(v2_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_docs(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/metrics")

    def openapi() -> dict[str, Any]:
        # POST /predict reads its body itself (JSON or CSV), so its request schemas are added here.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (Passenger, PassengerBatch):
                definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(definition.pop("$defs", {}))
                components[model.__name__] = definition
            components.update(v2_routes.schema_components())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def serving_app() -> FastAPI:
    """The app a server imports: a bad setting ends the process with one line, like a bad checkpoint."""
    try:
        return create_app(get_settings(), exit_on_load_error=True, freeze_heap=True)
    except SettingsError as exc:
        fail_start(str(exc))


app = serving_app()
