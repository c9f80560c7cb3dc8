"""Operational metrics in Prometheus format: requests, latency, predictions, served models' accuracy.

With more than one worker (`python -m service` sets PROMETHEUS_MULTIPROC_DIR, prometheus_client's own
switch) every worker writes its values to files in that directory and any scrape sums them over workers.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.note import REQUEST_ID_HEADER, UNMATCHED_ROUTE, new_note, note_of
from service.server import metrics_store
from service.server.metrics_store import Degraded

# Sub-millisecond buckets: a single prediction is answered in well under a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROCESS_ENV: Final[str] = "PROMETHEUS_MULTIPROC_DIR"
NOSNIFF: Final[tuple[bytes, bytes]] = (b"x-content-type-options", b"nosniff")
# Inference stages: tens of microseconds for one passenger, tens of milliseconds for a big batch.
STAGE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
STAGES: Final[tuple[str, ...]] = ("decode", "predict", "encode")
EXPOSITION_TYPE: Final[str] = CONTENT_TYPE_LATEST
NOT_SHARED: Final[bytes] = (
    b"# HELP metrics_values_not_shared Metric values a worker keeps in memory: the multiprocess directory is full.\n"
    b"# TYPE metrics_values_not_shared gauge\n"
    b'metrics_values_not_shared{pid="%d"} %d\n'
)
logger = logging.getLogger("service")


def multiprocess_dir() -> str | None:
    """The multiprocess directory when the values are shared between workers, else None."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def forget_dead_workers(directory: str | None) -> None:
    """Drop the live gauges of workers that died without retiring (kill -9, the OOM killer) from `directory`.

    A worker that exits normally marks itself dead (`Telemetry.retire`); one killed outright leaves its gauges,
    and `model_info` would show the run it served beside the one its replacement serves, for good.
    """
    if directory is None:
        return
    pids: set[int] = set()
    for name in os.listdir(directory):
        if name.startswith("gauge_live") and name.endswith(".db"):
            digits = name[: -len(".db")].rpartition("_")[2]
            if digits.isdigit():
                pids.add(int(digits))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, someone else's


class Telemetry:
    """The metrics of one app; a registry of its own so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        if self.multiprocess:
            metrics_store.install()  # before any metric: a full directory degrades the metrics, not the worker
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "predictions_total", "Passengers predicted, by model.", ["model"], registry=self.registry
        )
        self.auth_failures = Counter(
            "auth_failures_total", "Requests refused for their API key, by reason.", ["reason"], registry=self.registry
        )
        self.stages = Histogram(
            "inference_stage_seconds",
            "Time of each stage of an inference (decode, predict, encode), by protocol (predict, v2).",
            ["protocol", "stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self._stage_children: dict[str, list[Any]] = {}
        self._prediction_children: dict[str, Any] = {}
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}
        self.validation_accuracy = Gauge(
            "model_validation_accuracy",
            "Final-epoch validation accuracy of the served model.",
            ["model"],
            registry=self.registry,
            # Over workers: the value the most recent live worker set (a reload changes it).
            multiprocess_mode="livemostrecent",
        )
        self.reloads = Counter(
            "model_reloads_total", "Attempts to load a new run, by result.", ["result"], registry=self.registry
        )
        self.model_info = Gauge(
            "model_info",
            "1 for each served model, labelled with its run and version (0 for what a worker served before).",
            ["model", "run_id", "version"],
            registry=self.registry,
            # Over workers: 1 while any live worker serves it, so a swap in progress shows both runs.
            multiprocess_mode="livemax",
        )

    def count_auth_failure(self, reason: str) -> None:
        """Count one request refused for its API key (`reason`: missing, invalid, not_admin)."""
        self.auth_failures.labels(reason).inc()

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or the sum over all workers in multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        forget_dead_workers(multiprocess_dir())
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        try:
            text = generate_latest(registry)
        except Exception:  # a value file cut short (a full or damaged directory): this worker's values, said so
            logger.exception("cannot read the Prometheus multiprocess directory; this scrape has one worker's values")
            text = generate_latest(self.registry)
        if Degraded.values:
            text += NOT_SHARED % (os.getpid(), Degraded.values)
        return text

    def retire(self) -> None:
        """At a worker's exit: drop its live gauges from the shared directory (its counters stay counted)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def count_predictions(self, model: str, rows: int) -> None:
        """Add `rows` predictions of `model`."""
        child = self._prediction_children.get(model)
        if child is None:
            child = self._prediction_children[model] = self.predictions.labels(model)
        child.inc(rows)

    def observe_stages(self, protocol: str, seconds: list[float]) -> None:
        """Record the decode, predict and encode times of one inference."""
        children = self._stage_children.get(protocol)
        if children is None:
            children = self._stage_children[protocol] = [self.stages.labels(protocol, stage) for stage in STAGES]
        for child, value in zip(children, seconds, strict=True):
            child.observe(value)

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one request and record its latency."""
        # labels() looks the child up under a lock each time; caching the children keeps the
        # per-request cost to one dict lookup (the label space is bounded by the routes).
        key = (method, route)
        latency = self._latency_children.get(key)
        if latency is None:
            latency = self._latency_children[key] = self.latency.labels(method, route)
        latency.observe(seconds)
        count_key = (method, route, status)
        counter = self._request_children.get(count_key)
        if counter is None:
            counter = self._request_children[count_key] = self.requests.labels(method, route, status)
        counter.inc()


class ControlMiddleware:
    """The control app's one middleware: HEAD answered as the GET without its body (RFC 9110 section 9.3.2, where
    FastAPI would answer 405), the answer's status and route template noted, its request id and nosniff added."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; note what it was answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = note_of(scope) or new_note(scope)
        extra = [(REQUEST_ID_HEADER, note.request_id.encode()), NOSNIFF]
        head = scope["method"] == "HEAD"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                note.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # Routing rewrites the scope (a mount moves the path into root_path): the route is looked up in a copy.
        arrived = {**scope, "method": "GET"} if head else dict(scope)
        if head:
            scope = {**arrived}  # the GET that answers the HEAD; the note still counts the HEAD the client sent
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            note.route = route_template(scope, arrived)


def route_template(scope: Scope, arrived: Scope) -> str:
    """The route template a request matched (bounded label values, not the raw path), else "unmatched"; `arrived`
    is the scope as it was before routing rewrote it."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", []):
        match, _ = candidate.matches(arrived)
        if match == Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED_ROUTE))
    return UNMATCHED_ROUTE
