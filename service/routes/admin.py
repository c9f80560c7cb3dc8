"""POST /admin/reload: load the newest complete run now (exists only when admin keys are configured)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from service.errors import error_response
from service.schemas import ErrorResponse
from service.state import state_of

router = APIRouter(tags=["admin"])


class ReloadAnswer(BaseModel):
    """What a reload did."""

    previous_run_id: str | None
    run_id: str
    changed: bool


@router.post(
    "/admin/reload",
    response_model=ReloadAnswer,
    responses={
        401: {"model": ErrorResponse, "description": "No valid API key."},
        403: {"model": ErrorResponse, "description": "The key has no admin scope."},
        409: {"model": ErrorResponse, "description": "The new run was refused; the old one keeps serving."},
    },
)
async def reload_now(request: Request) -> Response | ReloadAnswer:
    """Swap to the run `current` points at now, through the same code path as the poller; 409 if it is refused."""
    outcome = await state_of(request.app).reloader.reload_now()
    if outcome.error is not None:
        return error_response(409, f"the new run was refused, the old one keeps serving: {outcome.error}")
    return ReloadAnswer(previous_run_id=outcome.previous_run_id, run_id=outcome.run_id, changed=outcome.changed)
