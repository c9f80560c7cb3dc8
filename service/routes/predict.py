"""POST /predict: one passenger or a batch, as JSON or Kaggle CSV, answered by one or both models."""

from __future__ import annotations

import csv
import io
import json
from functools import partial
from typing import Any, Final

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from service.access_log import note_answer
from service.deps import registry_of, settings_of, telemetry_of
from service.errors import MAX_ERRORS_LISTED, ApiError, summary
from service.negotiation import preferred
from service.parsing import ParsedPassengers, parse_body, read_body
from service.registry import Registry
from service.schemas import ErrorItem, ErrorResponse, PredictResponse
from survival.features import FloatArray, filled_fields
from survival.rules import clip
from survival.variants import VARIANTS, VariantName

router = APIRouter(tags=["predict"])

THRESHOLD: Final[float] = 0.5
# While a big body is handled in a thread, the event loop waits for the GIL at every wake-up, up to Python's
# switch interval (5 ms by default) each time; at 0.5 ms small requests keep their latency (bench/bench_mixed.py:
# single-passenger p99 with 10,000-row batches arriving went from about 100-150 ms to 27 ms on the 2-core machine).
GIL_SWITCH_INTERVAL_S: Final[float] = 0.0005
RESPONSE_TYPES: Final[tuple[str, ...]] = ("application/json", "text/csv")
ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON or non-UTF-8 CSV.",
        406: "No acceptable answer type (Accept), or a CSV answer for input without PassengerId.",
        413: "Body or batch over the limit.",
        415: "Content-Type other than application/json or text/csv.",
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
async def predict(request: Request) -> Response:
    """Predict with both models (or `model`); JSON in, or Kaggle test.csv rows in; JSON or a submission CSV out."""
    # The hot path reads the app's state and its one query parameter itself: FastAPI's parameter
    # and dependency resolution cost more per request than parsing, both models and the answer.
    registry, settings, telemetry = registry_of(request), settings_of(request), telemetry_of(request)
    model = model_parameter(request)
    want_csv = preferred(request.headers.get("accept"), RESPONSE_TYPES) == "text/csv"
    body = await read_body(request, settings.max_body_bytes)
    names: tuple[VariantName, ...] = (model or "batchnorm",) if want_csv else ((model,) if model else VARIANTS)
    job = partial(answer, registry, body, request.headers.get("content-type"), names, want_csv, settings.max_batch_size)
    if len(body) > settings.inline_max_bytes:
        # All per-row work (parsing, the models, writing the answer) off the event loop, one big body at a time:
        # a second thread would only compete for the GIL with the loop, which keeps serving small requests.
        content, raw = await anyio.to_thread.run_sync(job, limiter=request.app.state.batch_limiter)
    else:
        content, raw = job()
    for name in names:
        telemetry.count_predictions(name, raw.shape[0])
    note_answer(request.scope, raw.shape[0], names, registry.run_id)
    monitor = request.app.state.monitor
    if monitor is not None:
        monitor.observe(raw)  # only requests that passed validation reach this line
    media = "text/csv" if want_csv else "application/json"
    return Response(content, media_type=media, headers={"Vary": "Accept"})


def answer(
    registry: Registry,
    body: bytes,
    content_type: str | None,
    names: tuple[VariantName, ...],
    want_csv: bool,
    max_batch: int,
) -> tuple[bytes, FloatArray]:
    """Parse, predict and write the answer of one request: (body, raw rows). Pure CPU work, safe in a thread."""
    parsed = parse_body(body, content_type, max_batch)
    if want_csv and parsed.passenger_ids is None:
        raise ApiError(406, "a CSV answer (Accept: text/csv) needs CSV input with a PassengerId column")
    probs = registry.predict(parsed.raw, names)
    if want_csv:
        return submission_csv(parsed, probs[names[0]]).encode(), parsed.raw
    return json_answer(registry, parsed, probs), parsed.raw


def model_parameter(request: Request) -> VariantName | None:
    """The `model` query parameter: None, or a served variant's name (else 422 naming the parameter)."""
    unknown = [key for key in request.query_params if key != "model"][:MAX_ERRORS_LISTED]
    if unknown:
        message = "unknown query parameter (accepted: model)"
        items = [ErrorItem(field=clip(key), message=message) for key in unknown]
        raise ApiError(422, summary(items), items)
    values = request.query_params.getlist("model")
    if not values:
        return None
    for name in VARIANTS:
        if values == [name]:
            return name
    allowed = " or ".join(repr(v) for v in VARIANTS)
    message = f"Input should be {allowed}" if len(values) == 1 else "give model at most once"
    raise ApiError(422, f"model: {message}", [ErrorItem(field="model", message=message)])


def json_answer(registry: Registry, parsed: ParsedPassengers, probs: dict[VariantName, FloatArray]) -> bytes:
    """The PredictResponse body, written directly.

    For 10,000 rows, building a dict per prediction and handing it to json.dumps costs several
    times the model itself; this writes the same JSON from per-model string pieces.
    """
    pieces = [
        [
            f'"{name}":{{"survival_probability":{p!r},"survived":{"true" if p >= THRESHOLD else "false"}}}'
            for p in column.tolist()
        ]
        for name, column in probs.items()
    ]
    marks = [""] * parsed.raw.shape[0]
    for i, fields in filled_fields(parsed.raw).items():
        marks[i] = ',"filled":' + json.dumps(list(fields), separators=(",", ":"))
    predictions = ",".join("{" + ",".join(row) + mark + "}" for *row, mark in zip(*pieces, marks, strict=True))
    models = registry.versions_json[tuple(probs)]
    ids = f',"passenger_ids":{json.dumps(parsed.passenger_ids)}' if parsed.passenger_ids is not None else ""
    return f'{{"predictions":[{predictions}],"models":{models}{ids}}}'.encode()


def submission_csv(parsed: ParsedPassengers, probs: FloatArray) -> str:
    """A Kaggle submission file: PassengerId,Survived."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["PassengerId", "Survived"])
    for pid, p in zip(parsed.passenger_ids or [], probs.tolist(), strict=True):
        writer.writerow([pid, int(p >= THRESHOLD)])
    return out.getvalue()
