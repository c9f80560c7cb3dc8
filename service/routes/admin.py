"""POST /admin/reload and PUT /admin/champion (they exist only when admin keys are configured)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from service.champion import AnswerMode
from service.errors import error_response
from service.schemas import ErrorResponse
from service.state import state_of
from service.store import StoreUnavailableError

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


class ChampionChange(BaseModel):
    """The models /predict answers with from now on: both, or one champion (the other scores as the shadow)."""

    model_config = ConfigDict(extra="forbid")

    answer: AnswerMode


class ChampionAnswer(BaseModel):
    """The champion now and before."""

    answer: AnswerMode
    previous: AnswerMode


@router.put(
    "/admin/champion",
    response_model=ChampionAnswer,
    responses={
        401: {"model": ErrorResponse, "description": "No valid API key."},
        403: {"model": ErrorResponse, "description": "The key has no admin scope."},
        409: {"model": ErrorResponse, "description": "No store (STORE_URL=none): nothing to share the switch with."},
        503: {"model": ErrorResponse, "description": "The store cannot be written now; nothing changed."},
    },
)
async def switch_champion(change: ChampionChange, request: Request) -> Response | ChampionAnswer:
    """Answer /predict with `answer` on every worker and replica: this one at once, the others within
    CONTROL_POLL_S (they read it from the store). Both models still score and are recorded."""
    state = state_of(request.app)
    store = state.lifecycle.store
    if store is None:
        return error_response(
            409,
            "switching the champion at run time needs the store (STORE_URL), through which every worker and "
            "replica follows; set ANSWER and restart instead",
        )
    previous = state.champion.mode
    try:
        await anyio.to_thread.run_sync(store.switch_champion, change.answer, limiter=state.store_limiter)
    except StoreUnavailableError as exc:
        return error_response(503, f"the champion was not changed: {exc}")
    return ChampionAnswer(answer=change.answer, previous=previous)
