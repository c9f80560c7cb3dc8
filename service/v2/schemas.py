"""The Open Inference Protocol's JSON objects, as pydantic models: strict, bounded, documented."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

# Bounds on what a client may send in the JSON part of a request (assume hostile clients).
MAX_NAME_CHARS: Final[int] = 64
MAX_ID_CHARS: Final[int] = 256
MAX_PARAMETERS: Final[int] = 16
MAX_INPUTS: Final[int] = 3  # `features`, or the three columns Pclass, Fare, Age
MAX_OUTPUTS: Final[int] = 2  # survival_probability, survived
MAX_DIMS: Final[int] = 2

Datatype = Literal["FP64", "FP32", "INT64"]
ParameterValue = StrictBool | StrictInt | float | Annotated[str, Field(max_length=MAX_ID_CHARS)]
Parameters = Annotated[
    dict[Annotated[str, Field(max_length=MAX_NAME_CHARS)], ParameterValue], Field(max_length=MAX_PARAMETERS)
]
TensorName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class V2Model(BaseModel):
    """Common configuration: strict types; unknown fields are refused (a typo is an error, not ignored)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class RequestInput(V2Model):
    """One input tensor: `data` inline (flat or nested JSON), or `parameters.binary_data_size` bytes after the JSON."""

    name: TensorName
    shape: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_DIMS)]
    datatype: StrictStr = Field(max_length=MAX_NAME_CHARS, description="FP64; FP32 and INT64 are accepted too.")
    parameters: Parameters | None = None
    # Checked by the codec, not here: pydantic would visit every element twice.
    data: Any = None


class RequestOutput(V2Model):
    """An output the client wants, and whether as binary data (`parameters.binary_data`)."""

    name: TensorName
    parameters: Parameters | None = None


class InferenceRequest(V2Model):
    """The JSON part of POST .../infer."""

    id: Annotated[StrictStr, Field(max_length=MAX_ID_CHARS)] | None = None
    parameters: Parameters | None = None
    inputs: Annotated[list[RequestInput], Field(min_length=1, max_length=MAX_INPUTS)]
    outputs: Annotated[list[RequestOutput], Field(max_length=MAX_OUTPUTS)] | None = None


class ResponseOutput(BaseModel):
    """One output tensor of an answer; `data` is absent when it travels as binary data."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[float] | list[bool] | None = None


class InferenceResponse(BaseModel):
    """The answer of POST .../infer (its JSON part, when binary outputs follow it)."""

    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    """A tensor's name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """GET /v2/models/{name}[/versions/{version}]."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    properties: dict[str, str] = Field(default_factory=dict)


class ServerMetadata(BaseModel):
    """GET /v2."""

    name: str
    version: str
    extensions: list[str]


class V2Error(BaseModel):
    """Every V2 error body (what tritonclient and KServe's clients read)."""

    error: str


class Liveness(BaseModel):
    """GET /v2/health/live: the status code is the answer; the body repeats it."""

    live: bool


class Readiness(BaseModel):
    """GET /v2/health/ready and .../ready: the status code is the answer (200 ready, else 503)."""

    ready: bool
    name: str | None = None
