"""The OpenAPI entry of POST /feedback (outcomes of served predictions, JSON or CSV).

service/dataplane/feedback.py serves the route; this router is never mounted, only read by the OpenAPI document
(`service.main.openapi_schema`).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.schemas import ErrorResponse

router = APIRouter(tags=["comparison"])


class OutcomeItem(BaseModel):
    """One real outcome: of a prediction (its `id` in a /predict answer) or of a passenger (every recorded
    prediction with that PassengerId)."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str | None = Field(default=None, description="`<request id>/<row>`; give this or passenger_id.")
    passenger_id: str | None = Field(default=None, description="A PassengerId sent in a CSV /predict body.")
    survived: Literal[0, 1] | bool


class FeedbackBody(BaseModel):
    """Outcomes to record, all or none."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeItem] = Field(min_length=1)


class FeedbackAnswer(BaseModel):
    """What was recorded (committed before this answer)."""

    outcomes: int = Field(description="Outcomes in the request.")
    labelled: int = Field(description="Predictions labelled now.")
    already_labelled: int = Field(description="Predictions that already had the same outcome (counted once).")


ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON or non-UTF-8 CSV.",
        404: "No store (STORE_URL=none).",
        409: "An outcome contradicts one already recorded (nothing recorded).",
        413: "Body or outcome count over the limit.",
        415: "Content-Type other than application/json or text/csv, or a compressed body.",
        422: "An unknown id, an id given twice with different outcomes, or a bad field; `errors` names each "
        "(nothing recorded).",
        503: "The store is unavailable now (nothing recorded).",
    }.items()
}
REQUEST_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/FeedbackBody"},
                "example": {
                    "outcomes": [{"prediction_id": "r1/0", "survived": 1}, {"passenger_id": "892", "survived": 0}]
                },
            },
            "text/csv": {"schema": {"type": "string"}, "example": "PassengerId,Survived\n892,0\n893,1\n"},
        },
    },
}


@router.post(
    "/feedback",
    response_model=FeedbackAnswer,
    responses=ERRORS,
    openapi_extra=REQUEST_BODY,
    summary="Record the real outcomes of served predictions",
)
async def feedback() -> None:
    """JSON outcomes by prediction id or PassengerId, or a CSV with PredictionId or PassengerId and Survived
    (Kaggle's train.csv as it is); recorded atomically, acknowledged only once committed."""
    # Documentation only: service/dataplane/ answers POST /feedback before FastAPI's router is reached.
    raise NotImplementedError
