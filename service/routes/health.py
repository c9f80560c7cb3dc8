"""GET /health (the process is alive) and GET /ready (both models are loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.registry import Registry
from service.schemas import Health
from service.server.lifecycle import readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Health, responses={503: {"model": Health, "description": "Not ready."}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 only when both models are loaded and no SIGTERM has arrived, else 503."""
    status = readiness(request.app.state)
    if status != "ready":
        return JSONResponse(status_code=503, content=Health(status=status).model_dump())
    registry: Registry = request.app.state.registry
    return JSONResponse(content=Health(status="ready", models=list(registry.models)).model_dump())
