"""GET /models and GET /models/{name}: what each served model is and how it was trained."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import PairDep
from service.pair import ServedModel
from service.schemas import ErrorResponse, ModelInfo
from survival.variants import VariantName

router = APIRouter(tags=["models"])


def model_info(served: ServedModel) -> ModelInfo:
    """The public description of a served model."""
    meta = served.metadata
    layers = []
    for width in meta.model.hidden:
        layers += [f"Linear({width})"] + (["BatchNorm1d"] if meta.model.batchnorm else []) + ["ReLU"]
    layers.append("Linear(1)")
    return ModelInfo(
        name=served.name,
        version=served.version,
        run_id=meta.run_id,
        created_at=meta.created_at,
        has_batchnorm=meta.model.batchnorm,
        architecture=meta.model,
        layers=layers,
        preprocessing=meta.preprocessing,
        hyperparameters=meta.hyperparameters,
        seed=meta.seed,
        data=meta.data,
        weights_sha256=meta.weights_sha256,
        versions=meta.versions,
    )


@router.get("/models", response_model=dict[VariantName, ModelInfo])
async def list_models(pair: PairDep) -> dict[VariantName, ModelInfo]:
    """Both served models."""
    return {name: model_info(served) for name, served in pair.models.items()}


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    responses={422: {"model": ErrorResponse, "description": "Unknown model name."}},
)
async def get_model(name: VariantName, pair: PairDep) -> ModelInfo:
    """One served model: `batchnorm` or `plain`."""
    return model_info(pair.models[name])
