"""GET /health (the process is alive) and GET /ready (both models are loaded)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import StateDep
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Health, responses={503: {"model": Health, "description": "Not ready."}})
async def ready(state: StateDep) -> JSONResponse:
    """Readiness: 200 only when both models are loaded and no SIGTERM has arrived, else 503."""
    status = state.readiness()
    pair = state.pair.current
    if status != "ready" or pair is None:
        return JSONResponse(status_code=503, content=Health(status=status).model_dump())
    return JSONResponse(content=Health(status="ready", models=list(pair.models)).model_dump())
