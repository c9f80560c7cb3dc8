"""GET /comparison: which model is right more often on the real traffic whose outcomes came back."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from service.champion import AnswerMode
from service.comparison.schemas import ComparisonReport
from service.deps import StateDep
from service.errors import error_response
from service.schemas import ErrorResponse
from service.store import StoreUnavailableError

router = APIRouter(tags=["comparison"])


class LiveComparison(ComparisonReport):
    """The live paired comparison of the two models, and which of them answers /predict now."""

    answer: AnswerMode = Field(description="Who answers /predict now: both, or the champion (ANSWER).")


@router.get(
    "/comparison",
    response_model=LiveComparison,
    responses={
        404: {"model": ErrorResponse, "description": "No store (STORE_URL=none)."},
        503: {"model": ErrorResponse, "description": "The store cannot be read now."},
    },
)
async def comparison(state: StateDep) -> Response | LiveComparison:
    """Both models over every prediction whose outcome came back (and the most recent COMPARISON_WINDOW), read
    from the store: the same on every worker and replica."""
    store = state.lifecycle.store
    if store is None:
        return error_response(404, "GET /comparison is off: this service records no predictions (STORE_URL=none)")
    try:
        report = await store.live_comparison(state.store_limiter)
    except StoreUnavailableError as exc:
        return error_response(503, f"the prediction store cannot be read now: {exc}")
    return LiveComparison(**dict(report), answer=state.champion.mode)
