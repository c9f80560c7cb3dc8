"""The V2 wire format: a JSON request (tensor data inline or as Triton's binary extension) to arrays, and back.

Binary tensor extension (Triton's `binary_tensor_data`): the body is the JSON object followed by the
raw tensors, little-endian and row-major, in the order of the inputs that carry
`parameters.binary_data_size`; the header `Inference-Header-Content-Length` gives the JSON's length.
Every length is checked against the body before anything is read: a slice that runs past the end, a
size that does not match the shape, or bytes no input claims are 400s, never a 500.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import numpy as np
from pydantic import ValidationError

from service.dataplane import strict_json
from service.errors import ApiError
from service.v2.schemas import MAX_DIMS, InferenceRequest, RequestInput
from survival.features import FloatArray

HEADER_LENGTH: Final[str] = "inference-header-content-length"
BINARY_EXTENSION: Final[str] = "binary_tensor_data"
# One table from the protocol's datatypes to NumPy's (explicitly little-endian, as the extension says).
INPUT_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
    "INT64": np.dtype("<i8"),
}
OUTPUT_DTYPES: Final[dict[str, np.dtype[Any]]] = {"FP64": np.dtype("<f8"), "BOOL": np.dtype("|b1")}
MAX_HEADER_DIGITS: Final[int] = 12
_NONE_WRONG: Final[object] = object()


@dataclass(frozen=True)
class Tensor:
    """A decoded input: its declared datatype and shape, and its values as float64 (row-major, flat)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: FloatArray


@dataclass(frozen=True)
class DecodedRequest:
    """An inference request: its id, its inputs by name, the outputs asked for (name -> as binary), the default."""

    id: str | None
    inputs: dict[str, Tensor]
    outputs: dict[str, bool] | None
    binary_output: bool


@dataclass(frozen=True)
class OutputTensor:
    """One output of the answer."""

    name: str
    datatype: str
    values: np.ndarray[Any, Any]


# A shape's dimensions are echoed in messages only up to this size (18 digits).
MAX_SHOWN_DIM: Final[int] = 10**18 - 1


def bad_request(message: str) -> NoReturn:
    """A 400 for a request that does not follow the protocol."""
    raise ApiError(400, message)


def decode(body: bytes, header_length: str | None, max_elements: int) -> DecodedRequest:
    """Parse and check a whole inference request body; `max_elements` bounds every tensor before it is read."""
    json_part, binary = split_body(body, header_length)
    # The JSON part names a few inputs and parameters: its keys are bounded like a batch's.
    request = parse_request(json_part, strict_json.KEYS_PER_PASSENGER * max_elements + strict_json.MAX_OBJECT_KEYS)
    inputs: dict[str, Tensor] = {}
    offset = 0
    for i, item in enumerate(request.inputs):
        where = f"inputs[{i}] ({item.name})"
        if item.name in inputs:
            bad_request(f"{where}: input {item.name!r} is given twice")
        dtype = INPUT_DTYPES.get(item.datatype)
        if dtype is None:
            bad_request(f"{where}: datatype {item.datatype[:20]!r} is not supported; send {', '.join(INPUT_DTYPES)}")
        if any(dim > MAX_SHOWN_DIM for dim in item.shape):
            # Checked before the product: dimensions of thousands of digits would make a number too long to print.
            raise ApiError(413, f"{where}: a dimension of the shape is over the limit of {max_elements} values")
        count = math.prod(item.shape)
        if count > max_elements:
            raise ApiError(413, f"{where}: shape {item.shape} holds {count} values, over the limit of {max_elements}")
        size = binary_size(item, where)
        if size is None:
            values = json_values(item, count, where)
        else:
            if size != count * dtype.itemsize:
                bad_request(
                    f"{where}: binary_data_size {size} does not match shape {item.shape} of {item.datatype} "
                    f"({count * dtype.itemsize} bytes)"
                )
            if offset + size > len(binary):
                bad_request(f"{where}: binary data runs past the end of the body ({len(binary) - offset} bytes left)")
            values = np.frombuffer(binary, dtype=dtype, count=count, offset=offset).astype(np.float64)
            offset += size
        inputs[item.name] = Tensor(item.name, item.datatype, tuple(item.shape), values)
    if offset != len(binary):
        bad_request(f"{len(binary) - offset} bytes of binary data after the JSON are claimed by no input")
    binary_output = flag(request.parameters, "binary_data_output", "parameters", False)
    return DecodedRequest(
        id=request.id, inputs=inputs, outputs=requested_outputs(request, binary_output), binary_output=binary_output
    )


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a body, split where Inference-Header-Content-Length says."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_HEADER_DIGITS):
        bad_request(f"Inference-Header-Content-Length must be a number of bytes, got {header_length[:20]!r}")
    length = int(text)
    if length > len(body):
        bad_request(f"Inference-Header-Content-Length {length} is longer than the body ({len(body)} bytes)")
    return body[:length], body[length:]


def parse_request(json_part: bytes, max_keys: int) -> InferenceRequest:
    """The JSON part as an InferenceRequest: strict, no duplicate keys, bounded."""
    # NaN is how clients write an unknown Age in JSON (Python's json and tritonclient emit it).
    data = strict_json.loads(json_part, allow_nan=True, max_keys=max_keys, what="request")
    if not isinstance(data, dict):
        bad_request("the request must be a JSON object with `inputs`")
    try:
        return InferenceRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        bad_request(f"{location(first['loc'])}: {first['msg']}{more}")


def location(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the client wrote it: inputs[0].shape[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "request"


def binary_size(item: RequestInput, where: str) -> int | None:
    """The input's `binary_data_size`, or None when its data is inline JSON."""
    value = (item.parameters or {}).get("binary_data_size")
    if value is None:
        return None
    if type(value) is not int or value < 0:
        bad_request(f"{where}: binary_data_size must be a whole number of bytes")
    if item.data is not None:
        bad_request(f"{where}: give either data or binary_data_size, not both")
    return value


def json_values(item: RequestInput, count: int, where: str) -> FloatArray:
    """Inline `data`, flat or nested as the shape, as float64 values (null or NaN: unknown)."""
    data = item.data
    if type(data) is not list:
        bad_request(f"{where}: data must be an array (or send binary_data_size)")
    flat: list[Any] = data
    if len(item.shape) == MAX_DIMS and data and type(data[0]) is list:
        rows, width = item.shape
        if len(data) != rows or any(type(row) is not list or len(row) != width for row in data):
            bad_request(f"{where}: nested data does not match shape {item.shape}")
        flat = [value for row in data for value in row]
    if len(flat) != count:
        bad_request(f"{where}: data holds {len(flat)} values, shape {item.shape} needs {count}")
    integer = item.datatype == "INT64"
    allowed: tuple[type, ...] = (int,) if integer else (int, float, type(None))
    wrong = next((v for v in flat if type(v) not in allowed), _NONE_WRONG)
    if wrong is not _NONE_WRONG:
        bad_request(f"{where}: data holds {_kind(wrong)}, not a number of datatype {item.datatype}")
    try:
        with np.errstate(over="ignore"):  # an FP32 value past its range is inf, which the rules refuse
            typed = np.array([math.nan if v is None else v for v in flat], dtype=INPUT_DTYPES[item.datatype])
    except OverflowError:
        bad_request(f"{where}: a value is outside the range of {item.datatype}")
    return typed.astype(np.float64, copy=False)  # FP64 data is float64 already


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array where a number belongs"
    return {str: "a string", bool: "a boolean", type(None): "null", float: "a fraction"}.get(type(value), "a value")


def flag(parameters: dict[str, Any] | None, key: str, where: str, default: bool) -> bool:
    """A boolean parameter (absent: `default`); anything but true/false is a 400."""
    value = (parameters or {}).get(key, default)
    if type(value) is not bool:
        bad_request(f"{where}.{key} must be true or false")
    return value


def requested_outputs(request: InferenceRequest, binary_output: bool) -> dict[str, bool] | None:
    """Output name -> whether it goes as binary data (its own parameter, else the request's); None: all outputs."""
    if request.outputs is None:
        return None
    outputs: dict[str, bool] = {}
    for i, output in enumerate(request.outputs):
        if output.name in outputs:
            bad_request(f"outputs[{i}]: output {output.name!r} is asked for twice")
        outputs[output.name] = flag(output.parameters, "binary_data", f"outputs[{i}].parameters", binary_output)
    return outputs


def encode(answer: dict[str, Any], tensors: list[OutputTensor], binary: set[str]) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an answer (InferenceResponse): JSON, then the outputs in `binary` as raw bytes.

    Written as plain dicts, not pydantic objects: validating 10,000 floats per output costs more than the models.
    """
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in tensors:
        output: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.values.shape)}
        if tensor.name in binary:
            blob = np.ascontiguousarray(tensor.values, dtype=OUTPUT_DTYPES[tensor.datatype]).tobytes()
            blobs.append(blob)
            output["parameters"] = {"binary_data_size": len(blob)}
        else:
            output["data"] = tensor.values.tolist()
        outputs.append(output)
    # json.dumps writes a float as its shortest round-tripping repr: the client reads back the exact float64.
    header = json.dumps({**answer, "outputs": outputs}, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return header + b"".join(blobs), headers
