"""The codec of the Open Inference Protocol's (KServe V2) infer routes: JSON or binary tensors in and out.

`service/v2/codec.py` reads and writes the wire format, `service/v2/inputs.py` turns tensors into passengers under
the input rules; this adapts them to the core. Errors are the protocol's `{"error": "..."}` body (what tritonclient
reads), with the same statuses as /predict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from service.dataplane.core import Answer, RouteMatch
from service.dataplane.head import RequestHead
from service.errors import ApiError
from service.note import SANE_REQUEST_ID
from service.pair import ServedModel, ServedPair
from service.v2 import codec
from service.v2.inputs import raw_rows
from survival.features import FEATURES, FloatArray
from survival.served import DECISION_THRESHOLD
from survival.variants import VARIANTS, VariantName

PROBABILITY, SURVIVED = "survival_probability", "survived"
OUTPUT_NAMES: Final[tuple[str, ...]] = (PROBABILITY, SURVIVED)
BODY_TYPES: Final[tuple[str, ...]] = ("", "application/json", "application/octet-stream")
JSON_HEAD: Final[bytes] = b"content-type: application/json\r\n"
# Up to this many rows an all-JSON answer is written directly (json_answer); more go through codec.encode.
JSON_DIRECT_ROWS: Final[int] = 64


def served_model(pair: ServedPair, name: str, version: str | None) -> ServedModel:
    """The named model of the pair (404 for an unknown name or version)."""
    if name not in pair.models:
        raise ApiError(404, f"unknown model {name[:64]!r}; served: {', '.join(VARIANTS)}")
    served = pair.models[name]
    if version is not None and version != served.version:
        raise ApiError(404, f"model {name!r} has no version {version[:64]!r}; served: {served.version}")
    return served


@dataclass(frozen=True, slots=True)
class V2Job:
    """The model asked for and the binary header's length field."""

    served: ServedModel
    header_length: str | None
    max_batch: int


@dataclass(frozen=True, slots=True)
class V2Decoded:
    """An inference request's passengers, the outputs asked for (name -> as binary) and its id."""

    raw: FloatArray
    names: tuple[VariantName, ...]
    wanted: dict[str, bool]
    request_id: str | None
    passenger_ids: None = None


class V2Codec:
    """POST /v2/models/{name}[/versions/{version}]/infer."""

    protocol = "v2"

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch

    def prepare(self, head: RequestHead, pair: ServedPair, query: bytes, route: RouteMatch) -> V2Job:
        """The model (404), the Content-Type and Content-Encoding (415), before the body is read."""
        assert route.name is not None  # the front matched a V2 infer route
        served = served_model(pair, route.name, route.version)
        head.refuse_repeated(b"content-type", codec.HEADER_LENGTH.encode())
        kind = head.media_type()
        if kind not in BODY_TYPES and not kind.endswith("+json"):
            raise ApiError(
                415, f"Content-Type {kind[:64]} is not supported; send application/json or application/octet-stream"
            )
        encoding = (head.content_encoding or "identity").strip().lower()
        if encoding != "identity":
            raise ApiError(415, f"Content-Encoding {encoding[:20]} is not supported; send the body uncompressed")
        return V2Job(served, head.v2_header_length, self.max_batch)

    def decode(self, job: V2Job, body: bytes, pair: ServedPair) -> V2Decoded:
        """The tensors, checked, as passengers."""
        decoded = codec.decode(body, job.header_length, max_elements=job.max_batch * len(FEATURES))
        wanted = decoded.outputs if decoded.outputs is not None else dict.fromkeys(OUTPUT_NAMES, decoded.binary_output)
        unknown = [n for n in wanted if n not in OUTPUT_NAMES]
        if unknown:
            codec.bad_request(f"unknown output {unknown[0][:64]!r}; this model gives {PROBABILITY}, {SURVIVED}")
        if decoded.id is not None and SANE_REQUEST_ID.fullmatch(decoded.id) is None:
            # The request's id names its predictions (`<id>/<row>`) and goes back in X-Request-ID.
            codec.bad_request(f"id must be 1 to 128 letters, digits, '.', '_', ':' or '-' (got {decoded.id[:64]!r})")
        raw = raw_rows(decoded.inputs, job.max_batch)
        return V2Decoded(raw, (job.served.name,), wanted, decoded.id)

    def encode(
        self, job: V2Job, decoded: V2Decoded, pair: ServedPair, probs: dict[VariantName, FloatArray], request_id: str
    ) -> Answer:
        """The InferenceResponse (its `id` the request's id): JSON, or JSON followed by the binary outputs."""
        column = probs[job.served.name]
        if not any(decoded.wanted.values()) and column.shape[0] <= JSON_DIRECT_ROWS:
            return Answer(200, JSON_HEAD, json_answer(job.served, decoded, pair, column, request_id))
        computed = {PROBABILITY: ("FP64", column), SURVIVED: ("BOOL", column >= DECISION_THRESHOLD)}
        tensors = [codec.OutputTensor(n, *computed[n]) for n in decoded.wanted]
        answer: dict[str, Any] = {"model_name": job.served.name, "model_version": job.served.version}
        answer["id"] = request_id
        answer["parameters"] = {"run_id": pair.run_id}
        binary = {n for n, as_binary in decoded.wanted.items() if as_binary}
        content, headers = codec.encode(answer, tensors, binary)
        head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
        return Answer(200, head, content)


def json_answer(
    served: ServedModel, decoded: V2Decoded, pair: ServedPair, column: FloatArray, request_id: str
) -> bytes:
    """The InferenceResponse of a few rows with every output inline, written directly: the same JSON as
    `codec.encode` writes (names, versions and run ids are plain characters; a float's repr is JSON's), without
    building the dictionaries for json.dumps."""
    values = column.tolist()
    data = {
        PROBABILITY: ("FP64", ",".join(map(repr, values))),
        SURVIVED: ("BOOL", ",".join("true" if p >= DECISION_THRESHOLD else "false" for p in values)),
    }
    outputs = ",".join(
        f'{{"name":"{name}","datatype":"{data[name][0]}","shape":[{len(values)}],"data":[{data[name][1]}]}}'
        for name in decoded.wanted
    )
    return (
        f'{{"model_name":"{served.name}","model_version":"{served.version}","id":"{request_id}",'
        f'"parameters":{{"run_id":"{pair.run_id}"}},"outputs":[{outputs}]}}'
    ).encode()


def error_body(exc: ApiError) -> bytes:
    """The protocol's error body (ASCII JSON: a lone surrogate a client sent is escaped, never a failure)."""
    return json.dumps({"error": exc.detail}).encode()
