"""Request bodies to passengers: JSON (json_input.py) or Kaggle-style CSV (csv_input.py), chosen by Content-Type.

Every value goes through survival/rules.py, the one definition of what a passenger may hold. Errors are
collected only up to MAX_ERRORS_LISTED: a body of a million bad keys costs no more than one of twenty.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.csv_input import parse_csv
from service.dataplane.head import CSV_TYPES, JSON_TYPES, media_type
from service.errors import ApiError
from service.json_input import parse_json
from survival.rules import FloatArray, clip


@dataclass(frozen=True)
class ParsedPassengers:
    """Validated passengers in input order, as the raw feature matrix (NaN for a missing Fare or Age)."""

    raw: FloatArray
    passenger_ids: list[str] | None = None


def parse_json_body(body: bytes, max_batch: int) -> ParsedPassengers:
    """A JSON body's passengers."""
    return ParsedPassengers(raw=parse_json(body, max_batch))


def parse_csv_body(body: bytes, max_batch: int) -> ParsedPassengers:
    """A CSV body's passengers and their PassengerIds."""
    raw, passenger_ids = parse_csv(body, max_batch)
    return ParsedPassengers(raw=raw, passenger_ids=passenger_ids)


def parse_body(body: bytes, content_type: str | None, max_batch: int) -> ParsedPassengers:
    """Dispatch on the Content-Type: JSON or CSV; anything else is a 415."""
    kind = media_type(content_type)
    if kind in JSON_TYPES or kind.endswith("+json"):
        return parse_json_body(body, max_batch)
    if kind in CSV_TYPES:
        return parse_csv_body(body, max_batch)
    shown = clip(kind) if kind else "none"
    raise ApiError(415, f"Content-Type {shown} is not supported; send application/json or text/csv")
