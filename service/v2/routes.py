"""The Open Inference Protocol (KServe V2) REST routes: health, metadata, readiness, and the infer routes' OpenAPI
entries (service/dataplane/ serves inference). Every error is the protocol's `{"error": "..."}` body (what tritonclient
reads), with the same statuses as the rest of the API.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from service.dataplane.v2 import PROBABILITY, SURVIVED
from service.dataplane.v2 import served_model as named_model
from service.errors import ApiError
from service.pair import ServedModel, ServedPair
from service.state import state_of
from service.v2 import codec
from service.v2.inputs import COLUMN_TENSORS, FEATURES_TENSOR
from service.v2.schemas import (
    InferenceRequest,
    InferenceResponse,
    Liveness,
    MetadataTensor,
    ModelMetadata,
    Readiness,
    ServerMetadata,
    V2Error,
)
from service.version import DISTRIBUTION
from survival.features import FEATURES
from survival.served import DECISION_THRESHOLD

SERVER_NAME: Final[str] = DISTRIBUTION
PLATFORM: Final[str] = "numpy"  # folded float64 layers (see service/pair.py)
OUTPUTS: Final[tuple[MetadataTensor, ...]] = (
    MetadataTensor(name=PROBABILITY, datatype="FP64", shape=[-1]),
    MetadataTensor(name=SURVIVED, datatype="BOOL", shape=[-1]),
)
ERROR_BODY: Final[dict[str, Any]] = {"model": V2Error}


def v2_error(status: int, message: str) -> JSONResponse:
    """The protocol's error body."""
    return JSONResponse(status_code=status, content={"error": message})


class V2Route(APIRoute):
    """A route whose errors are answered in the protocol's `{"error": ...}` body instead of the API's own."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler: an ApiError becomes a V2 error with the same status."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return v2_error(exc.status, exc.detail)

        return route


router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"], route_class=V2Route)


def served_model(request: Request, name: str, version: str | None) -> tuple[ServedPair, ServedModel]:
    """The served pair and the named model (404 for an unknown name or version, 503 while loading)."""
    pair = state_of(request.app).pair.require()
    return pair, named_model(pair, name, version)


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> ServerMetadata:
    """The server's name, version and protocol extensions (Triton's binary tensor data)."""
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=[codec.BINARY_EXTENSION])


@router.get("/health/live", response_model=Liveness, summary="Server live")
async def live() -> Liveness:
    """200 while the process answers."""
    return Liveness(live=True)


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Models not loaded, or draining after a SIGTERM."}},
    summary="Server ready",
)
async def ready(request: Request) -> JSONResponse:
    """200 when both models are loaded and no SIGTERM has arrived (as GET /ready), else 503."""
    ready = state_of(request.app).readiness() == "ready"
    return JSONResponse(status_code=200 if ready else 503, content=Readiness(ready=ready).model_dump(exclude_none=True))


MODEL_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    404: {**ERROR_BODY, "description": "Unknown model or version."},
    503: {**ERROR_BODY, "description": "Models not loaded."},
}


def metadata(pair: ServedPair, served: ServedModel) -> ModelMetadata:
    """What the model takes and gives."""
    columns = ", ".join(FEATURES)
    return ModelMetadata(
        name=served.name,
        versions=[served.version],
        platform=PLATFORM,
        inputs=[MetadataTensor(name=FEATURES_TENSOR, datatype="FP64", shape=[-1, len(FEATURES)])],
        outputs=list(OUTPUTS),
        properties={
            "run_id": pair.run_id,
            "features": f"{columns}; NaN (or null in JSON) for an unknown Fare or Age",
            "alternative_inputs": f"three tensors {', '.join(COLUMN_TENSORS)} of shape [-1] instead of features",
            "accepted_datatypes": ", ".join(codec.INPUT_DTYPES),
            "batchnorm": str(served.metadata.model.batchnorm).lower(),
            "threshold": str(DECISION_THRESHOLD),
        },
    )


@router.get("/models/{name}", response_model=ModelMetadata, responses=MODEL_ERRORS, summary="Model metadata")
async def model_metadata(request: Request, name: str) -> ModelMetadata:
    """Inputs, outputs and the served version of `batchnorm` or `plain`."""
    return metadata(*served_model(request, name, None))


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=MODEL_ERRORS,
    summary="Model metadata (one version)",
)
async def model_version_metadata(request: Request, name: str, version: str) -> ModelMetadata:
    """The same, for the served version only (another version is a 404)."""
    return metadata(*served_model(request, name, version))


def model_ready_answer(request: Request, name: str, version: str | None) -> JSONResponse:
    """200 when the model (and version) is served; 404 unknown; 503 loading."""
    _, served = served_model(request, name, version)
    return JSONResponse(content=Readiness(name=served.name, ready=True).model_dump())


@router.get("/models/{name}/ready", response_model=Readiness, responses=MODEL_ERRORS, summary="Model ready")
async def model_ready(request: Request, name: str) -> JSONResponse:
    """The status code is the answer: 200 ready, 404 unknown model, 503 not loaded."""
    return model_ready_answer(request, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=Readiness,
    responses=MODEL_ERRORS,
    summary="Model ready (one version)",
)
async def model_version_ready(request: Request, name: str, version: str) -> JSONResponse:
    """The same, for one version."""
    return model_ready_answer(request, name, version)


INFER_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The answer: JSON, or with binary outputs the JSON (its length in the "
        "Inference-Header-Content-Length header) followed by the outputs' bytes.",
    },
    400: {**ERROR_BODY, "description": "Not a valid inference request (JSON, tensors, shapes, binary lengths)."},
    413: {**ERROR_BODY, "description": "Body or batch over the limit."},
    415: {**ERROR_BODY, "description": "Content-Type or Content-Encoding not supported."},
    422: {**ERROR_BODY, "description": "A value breaks an input rule (the same rules and words as /predict)."},
    **MODEL_ERRORS,
}
INFER_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/InferenceRequest"},
                "examples": {
                    "features": {
                        "value": {
                            "id": "42",
                            "inputs": [
                                {
                                    "name": "features",
                                    "shape": [2, 3],
                                    "datatype": "FP64",
                                    "data": [[3, 7.25, 22], [1, 71.2833, None]],
                                }
                            ],
                        }
                    },
                    "columns": {
                        "value": {
                            "inputs": [
                                {"name": "Pclass", "shape": [2], "datatype": "INT64", "data": [3, 1]},
                                {"name": "Fare", "shape": [2], "datatype": "FP64", "data": [7.25, 71.2833]},
                                {"name": "Age", "shape": [2], "datatype": "FP64", "data": [22, 38]},
                            ],
                            "outputs": [{"name": PROBABILITY}],
                        }
                    },
                },
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Triton's binary tensor extension: the JSON (its length in the "
                "Inference-Header-Content-Length header), then the tensors' bytes.",
            },
        },
    }
}


def schema_components() -> dict[str, Any]:
    """The OpenAPI components of the request body that the infer routes read themselves."""
    definition = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**definition.pop("$defs", {}), InferenceRequest.__name__: definition}


# Documentation only: service/dataplane/ answers the infer routes before FastAPI's router is reached; this router
# is never mounted, only read by the OpenAPI document (`service.main.openapi_schema`).
infer_router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])


@infer_router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=INFER_ERRORS,
    openapi_extra=INFER_BODY,
    summary="Inference",
)
async def model_infer(name: str) -> None:
    """Survival probabilities of N passengers from `features` [N, 3] (or Pclass, Fare, Age [N]); JSON or binary."""
    raise NotImplementedError


@infer_router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=INFER_ERRORS,
    openapi_extra=INFER_BODY,
    summary="Inference (one version)",
)
async def model_version_infer(name: str, version: str) -> None:
    """The same, for the served version only (another version is a 404)."""
    raise NotImplementedError
