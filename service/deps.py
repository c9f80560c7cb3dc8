"""FastAPI dependencies of the control routes, each defined once as an Annotated alias over the typed app state.

All are `async def`: a plain `def` dependency runs in the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.pair import ServedPair
from service.state import AppState, state_of
from service.telemetry import Telemetry


async def get_state(request: Request) -> AppState:
    """Dependency: the app's state."""
    return state_of(request.app)


async def get_pair(request: Request) -> ServedPair:
    """Dependency: the served pair (503 while none is loaded)."""
    return state_of(request.app).pair.require()


async def get_telemetry(request: Request) -> Telemetry:
    """Dependency: the app's Prometheus metrics."""
    return state_of(request.app).telemetry


StateDep = Annotated[AppState, Depends(get_state)]
PairDep = Annotated[ServedPair, Depends(get_pair)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]
