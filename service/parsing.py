"""Request bodies to passengers: JSON (json_input.py) or Kaggle-style CSV (csv_input.py), chosen by Content-Type.

Every value goes through survival/rules.py, the one definition of what a passenger may hold. Errors are
collected only up to MAX_ERRORS_LISTED: a body of a million bad keys costs no more than one of twenty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import Request
from starlette.requests import ClientDisconnect

from service.csv_input import parse_csv
from service.errors import ApiError
from service.json_input import parse_json
from survival.rules import FloatArray, clip

JSON_TYPES: Final[tuple[str, ...]] = ("application/json",)
CSV_TYPES: Final[tuple[str, ...]] = ("text/csv", "application/csv")


@dataclass(frozen=True)
class ParsedPassengers:
    """Validated passengers in input order, as the raw feature matrix (NaN for a missing Fare or Age)."""

    raw: FloatArray
    passenger_ids: list[str] | None = None


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header, lower-cased ('' when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) anything over `max_bytes` without reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > max_bytes:
                raise ApiError(413, f"request body is over the limit of {max_bytes} bytes")
    except ClientDisconnect:
        # The client hung up mid-body (load generators do at the end of a run): nothing to answer,
        # and not a server error to log with a traceback.
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    return bytes(chunks)


def parse_body(body: bytes, content_type: str | None, max_batch: int) -> ParsedPassengers:
    """Dispatch on the Content-Type: JSON or CSV; anything else is a 415."""
    kind = media_type(content_type)
    if kind in JSON_TYPES or kind.endswith("+json"):
        return ParsedPassengers(raw=parse_json(body, max_batch))
    if kind in CSV_TYPES:
        raw, passenger_ids = parse_csv(body, max_batch)
        return ParsedPassengers(raw=raw, passenger_ids=passenger_ids)
    shown = clip(kind) if kind else "none"
    raise ApiError(415, f"Content-Type {shown} is not supported; send application/json or text/csv")
