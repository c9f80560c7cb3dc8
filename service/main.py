"""The FastAPI app: `create_app` builds the typed state, the data plane in front and the control routes behind it.

Run with `python -m service` (the production server, service/server/); `uvicorn service.main:app` works for one
worker. Settings come from environment variables (service/config.py).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from starlette.types import Receive, Scope, Send
from threadpoolctl import threadpool_limits

from service.access_log import AccessLog
from service.apidocs import STATIC_DIR as DOCS_STATIC_DIR
from service.apidocs import install_docs
from service.auth import KeyCheck, KeyRing
from service.champion import Champion
from service.config import Settings, SettingsError, get_settings
from service.dataplane.core import GIL_SWITCH_INTERVAL_S
from service.dataplane.front import DataPlane, match
from service.errors import install_error_handlers
from service.monitoring import follow_swaps, start_monitor
from service.monitoring.gauges import MonitoringGauges
from service.note import RequestNote, new_note
from service.pair import ServedPair
from service.reload import Reloader, polling
from service.routes import admin, comparison, feedback, health, metrics, models, monitoring, predict, runs
from service.routes.feedback import FeedbackBody
from service.schemas import Passenger, PassengerBatch
from service.server.lifecycle import die_with_launcher, fail_start, install_drain
from service.state import AppState, PairHolder, state_of
from service.static_files import BoundedStaticFiles
from service.store import recording
from service.store.metrics import StoreMetrics
from service.study_cache import StudyCache
from service.telemetry import ControlMiddleware, Telemetry
from service.v2 import routes as v2_routes
from service.version import package_version
from survival.checkpoint import CheckpointError
from survival.study import STUDY_FILE

logger = logging.getLogger("service")
STATIC_DIR = Path(__file__).resolve().parent / "dashboard" / "static"
DESCRIPTION = """Survival predictions from two versions of the same network, trained under identical conditions:
`batchnorm` (Linear -> BatchNorm1d -> ReLU) and `plain` (Linear -> ReLU). Both answer by default.
Validation metrics and the training curves are at `GET /metrics` (a dashboard in a browser)."""


class ServiceApp(FastAPI):
    """FastAPI with the data plane in front: data routes go straight to it, the rest through FastAPI's stack; every
    HTTP request is given its note, timed, counted and logged here, once."""

    dataplane: DataPlane
    service: AppState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI call."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        note = new_note(scope)
        start = time.perf_counter()
        try:
            route = match(scope["path"])
            if route is not None:
                note.route = route.template
                await self.dataplane.serve(scope, receive, send, route, note)
            else:
                await super().__call__(scope, receive, send)
        finally:
            self.finish(note, time.perf_counter() - start)

    def finish(self, note: RequestNote, seconds: float) -> None:
        """The request's metrics and its access-log line."""
        state = self.service
        if note.timed_out:
            note.status = 408  # the server answered 408 itself and dropped the app's answer
        state.telemetry.observe(note.method, note.route, str(note.status), seconds)
        if state.access_log is not None:
            if note.run_id is None:
                pair = state.pair.current
                note.run_id = pair.run_id if pair is not None else None
            state.access_log.write(note, seconds)


def build_state(settings: Settings) -> AppState:
    """Everything the app is made of, except the models (loaded when it starts)."""
    telemetry = Telemetry()
    pair = PairHolder(telemetry)
    state = AppState(
        settings=settings,
        telemetry=telemetry,
        keys=KeyRing.from_settings(settings),
        access_log=AccessLog(settings.log_format) if settings.access_log else None,
        pair=pair,
        reloader=Reloader(pair, settings.model_dir, telemetry),
        study=StudyCache(settings.model_dir / STUDY_FILE, settings.study_max_bytes, settings.file_read_timeout_s),
        # Registered once per app (a lifespan may run more than once, in tests).
        monitor_gauges=MonitoringGauges(telemetry.registry) if settings.monitor else None,
        champion=Champion(settings.answer),
        store_metrics=StoreMetrics(telemetry.registry) if recording(settings.store_url) else None,
    )
    pair.on_swap(follow_swaps(state.lifecycle))
    return state


def lifespan_of(state: AppState, exit_on_load_error: bool, freeze_heap: bool) -> Any:
    """The app's lifespan: load and publish the pair, start the monitor, the drain and the poller; undo at the end."""
    settings = state.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        die_with_launcher()
        threadpool_limits(settings.compute_threads, user_api="blas")
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        try:
            pair = ServedPair.load(settings.model_dir)
        except CheckpointError as exc:
            if not exit_on_load_error:
                raise
            fail_start(f"cannot load the models: {exc}")  # one clear line instead of a traceback
        state.lifecycle.monitor = start_monitor(settings, pair, state.monitor_gauges)
        if state.store_metrics is not None:
            # Imported only with the store on: SQLAlchemy is most of a worker's start-up imports.
            from service.store.database import StoreError
            from service.store.store import open_store

            try:
                store = open_store(settings, state.store_metrics, state.champion)
            except StoreError as exc:
                if not exit_on_load_error:
                    raise
                fail_start(str(exc))
            if store is not None:
                store.start()
                state.lifecycle.store = store
        state.reloader.start_serving(pair)
        if freeze_heap:
            # A full (generation 2) collection walks every tracked object, and after start-up the app and its
            # libraries hold tens of thousands; they live as long as the process, so they are frozen once
            # (gc.freeze) and never walked again in the middle of a big batch (bench/bench_mixed.py). Not in tests,
            # which build many apps in one process and need theirs collected.
            gc.collect()
            gc.freeze()
        logger.info("serving run %s from %s", pair.run_id, settings.model_dir)
        install_drain(state.lifecycle, min(settings.drain_s, settings.graceful_timeout_s))
        async with polling(state.reloader, settings.reload_poll_s):
            yield
        state.pair.retire()
        if state.lifecycle.store is not None:
            # The queued predictions are written before the exit (SIGTERM); a kill -9 loses at most a flush interval.
            state.lifecycle.store.close(settings.graceful_timeout_s / 2)
            state.lifecycle.store = None
        state.telemetry.retire()
        state.lifecycle.monitor = None
        if state.access_log is not None:
            state.access_log.flush()

    return lifespan


def create_app(
    settings: Settings | None = None, *, exit_on_load_error: bool = False, freeze_heap: bool = False
) -> ServiceApp:
    """Build the app; the models load when it starts (lifespan), not at import.

    With `exit_on_load_error` a bad checkpoint ends the process with one line on stderr and a
    non-zero status (what a server should do); without it the CheckpointError propagates (tests).
    With `freeze_heap` (a server process) what start-up allocated is frozen out of the garbage collector.
    """
    state = build_state(settings or get_settings())
    # With keys configured every control route checks them (a dependency, so a refusal is counted under its route).
    checks = [Depends(KeyCheck(state.keys, state.settings.metrics_need_key, state.telemetry))]
    app = ServiceApp(
        title="Titanic survival: BatchNorm vs plain",
        version=package_version(),
        description=DESCRIPTION,
        lifespan=lifespan_of(state, exit_on_load_error, freeze_heap),
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
        # Starlette's trailing-slash redirect builds its Location from the client's Host header; no route
        # here ends in a slash, so a path that does is a plain 404 instead of a redirect anywhere.
        redirect_slashes=False,
        dependencies=checks if state.keys.enabled else [],
    )
    app.state.service = app.service = state
    app.dataplane = DataPlane(state)
    install_error_handlers(app)
    app.add_middleware(ControlMiddleware)
    if state.keys.admin:
        # /admin/... exists only when someone may call it, and is left out of the public OpenAPI document, which
        # would otherwise tell anyone that admin keys are configured.
        app.include_router(admin.router, include_in_schema=False)
    for module in (health, models, metrics, monitoring, comparison, runs):
        app.include_router(module.router)
    app.include_router(v2_routes.router)
    per_client, sending = state.settings.static_max_large_per_client, dict[str, int]()
    dashboard_files = BoundedStaticFiles(directory=STATIC_DIR, max_large_per_client=per_client, sending=sending)
    app.mount("/static", dashboard_files, name="static")
    install_docs(app, BoundedStaticFiles(directory=DOCS_STATIC_DIR, max_large_per_client=per_client, sending=sending))
    app.add_api_route("/", root, include_in_schema=False)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


async def root() -> RedirectResponse:
    """The dashboard."""
    return RedirectResponse("/metrics")


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document: the control routes, and the data routes (served by the data plane) from their
    documentation routers, with the request bodies they read themselves."""
    if app.openapi_schema is None:
        routes = [*app.routes, *predict.router.routes, *feedback.router.routes, *v2_routes.infer_router.routes]
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Passenger, PassengerBatch, FeedbackBody):
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        components.update(v2_routes.schema_components())
        app.openapi_schema = schema
    return app.openapi_schema


def serving_app() -> ServiceApp:
    """The app a server imports: a bad setting ends the process with one line, like a bad checkpoint."""
    try:
        return create_app(get_settings(), exit_on_load_error=True, freeze_heap=True)
    except SettingsError as exc:
        fail_start(str(exc))


app = serving_app()
__all__ = ["ServiceApp", "app", "create_app", "state_of"]
