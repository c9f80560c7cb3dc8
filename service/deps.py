"""FastAPI dependencies, each defined once as an Annotated alias.

All are `async def`: a plain `def` dependency runs in the thread pool, and three thread hops per
request cost more than the whole prediction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.errors import ApiError
from service.registry import Registry
from service.telemetry import Telemetry


def settings_of(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def registry_of(request: Request) -> Registry:
    """The loaded models, or 503 while they are not loaded."""
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        raise ApiError(503, "models are not loaded yet")
    return registry


def telemetry_of(request: Request) -> Telemetry:
    """The app's Prometheus metrics."""
    telemetry: Telemetry = request.app.state.telemetry
    return telemetry


async def get_registry(request: Request) -> Registry:
    """Dependency: the loaded models (503 while not loaded)."""
    return registry_of(request)


async def get_telemetry(request: Request) -> Telemetry:
    """Dependency: the app's Prometheus metrics."""
    return telemetry_of(request)


RegistryDep = Annotated[Registry, Depends(get_registry)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]
