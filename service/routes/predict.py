"""The OpenAPI entry of POST /predict (one passenger or a batch, JSON or Kaggle CSV, one or both models).

service/dataplane/ serves the route; this router is never mounted, only read by the OpenAPI document
(`service.main.openapi_schema`).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter

from service.schemas import ErrorResponse, PredictResponse
from survival.variants import VARIANTS

router = APIRouter(tags=["predict"])

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON or non-UTF-8 CSV.",
        406: "No acceptable answer type (Accept), or a CSV answer for input without PassengerId.",
        413: "Body or batch over the limit.",
        415: "Content-Type other than application/json or text/csv, or a compressed body (Content-Encoding).",
        422: "A field out of range, missing, of the wrong type or unknown, or an unknown query parameter; `errors` "
        "names each one.",
        503: "Models not loaded.",
    }.items()
}
CSV_EXAMPLE = (
    "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
    '892,3,"Kelly, Mr. James",male,34.5,0,0,330911,7.8292,,Q\n'
)
MODEL_PARAMETER: Final[dict[str, Any]] = {
    "name": "model",
    "in": "query",
    "required": False,
    "description": "Answer with this model only (default: both).",
    "schema": {"type": "string", "enum": list(VARIANTS)},
}
REQUEST_BODY: Final[dict[str, Any]] = {
    "parameters": [MODEL_PARAMETER],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/Passenger"},
                        {"$ref": "#/components/schemas/PassengerBatch"},
                    ]
                },
                "examples": {
                    "single": {"value": {"pclass": 3, "fare": 7.25, "age": 22}},
                    "kaggle_names": {"value": {"Pclass": 1, "Fare": 71.2833, "Age": 38}},
                    "batch": {
                        "value": {"passengers": [{"pclass": 3, "fare": 7.25, "age": 22}, {"pclass": 1, "fare": 80}]}
                    },
                },
            },
            "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
        },
    },
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {"example": "PassengerId,Survived\n892,0\n"}}}},
    openapi_extra=REQUEST_BODY,
    summary="Survival probability of one passenger or a batch",
)
async def predict() -> None:
    """Predict with both models (or `model`); JSON in, or Kaggle test.csv rows in; JSON or a submission CSV out."""
    # Documentation only: service/dataplane/ answers POST /predict before FastAPI's router is reached.
    raise NotImplementedError
