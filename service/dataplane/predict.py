"""The codec of POST /predict: JSON (one passenger or a batch) or Kaggle CSV in; JSON or a submission CSV out."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from service.champion import Champion
from service.dataplane.core import Answer, RouteMatch
from service.dataplane.head import RequestHead, csv_or_json
from service.errors import MAX_ERRORS_LISTED, ApiError, summary
from service.negotiation import preferred
from service.pair import ServedPair
from service.parsing import ParsedPassengers, parse_csv_body, parse_json_body
from service.schemas import ErrorItem
from survival.features import FloatArray, filled_fields
from survival.rules import clip
from survival.served import DECISION_THRESHOLD
from survival.variants import VARIANTS, VariantName

RESPONSE_TYPES: Final[tuple[str, ...]] = ("application/json", "text/csv")
JSON_HEAD: Final[bytes] = b"content-type: application/json\r\nvary: Accept\r\n"
CSV_HEAD: Final[bytes] = b"content-type: text/csv; charset=utf-8\r\nvary: Accept\r\n"


@dataclass(frozen=True, slots=True)
class PredictJob:
    """What the head says: the body's format, the models that answer, and whether the answer is a CSV."""

    csv_body: bool
    names: tuple[VariantName, ...]
    want_csv: bool
    max_batch: int


@dataclass(frozen=True, slots=True)
class PredictDecoded:
    """The passengers of a /predict body."""

    parsed: ParsedPassengers
    names: tuple[VariantName, ...]

    @property
    def raw(self) -> FloatArray:
        """The passengers' raw rows."""
        return self.parsed.raw

    @property
    def request_id(self) -> None:
        """A /predict body never names the request (its id is X-Request-ID's, or generated)."""
        return None

    @property
    def passenger_ids(self) -> list[str] | None:
        """The CSV's PassengerIds."""
        return self.parsed.passenger_ids


class PredictCodec:
    """POST /predict."""

    protocol = "predict"

    def __init__(self, max_batch: int, champion: Champion) -> None:
        self.max_batch = max_batch
        self.champion = champion

    def prepare(self, head: RequestHead, pair: ServedPair, query: bytes, route: RouteMatch) -> PredictJob:
        """The query's `model`, the Accept header and the Content-Type, all checked before the body is read."""
        model = model_parameter(query) if query else None
        want_csv = preferred(head.accept, RESPONSE_TYPES) == "text/csv"
        csv_body = csv_or_json(head)
        if want_csv and not csv_body:
            raise ApiError(406, "a CSV answer (Accept: text/csv) needs CSV input with a PassengerId column")
        # A request that names no model gets the champion's answer (ANSWER; both by default; a CSV answer has one
        # Survived column, batchnorm's unless a champion is set).
        default = self.champion.names
        names: tuple[VariantName, ...] = (model,) if model else (default[:1] if want_csv else default)
        return PredictJob(csv_body, names, want_csv, self.max_batch)

    def decode(self, job: PredictJob, body: bytes, pair: ServedPair) -> PredictDecoded:
        """The passengers of the body, by the input rules."""
        parsed = parse_csv_body(body, job.max_batch) if job.csv_body else parse_json_body(body, job.max_batch)
        if job.want_csv and parsed.passenger_ids is None:
            raise ApiError(406, "a CSV answer (Accept: text/csv) needs CSV input with a PassengerId column")
        return PredictDecoded(parsed, job.names)

    def encode(
        self,
        job: PredictJob,
        decoded: PredictDecoded,
        pair: ServedPair,
        probs: dict[VariantName, FloatArray],
        request_id: str,
    ) -> Answer:
        """The PredictResponse JSON, or the submission CSV."""
        if job.want_csv:
            return Answer(200, CSV_HEAD, submission_csv(decoded.parsed, probs[job.names[0]]).encode())
        return Answer(200, JSON_HEAD, json_answer(pair, decoded.parsed, probs, request_id))


def model_parameter(query: bytes) -> VariantName | None:
    """The `model` query parameter: None, or a served variant's name (else 422 naming the parameter)."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    unknown = [key for key, _ in pairs if key != "model"][:MAX_ERRORS_LISTED]
    if unknown:
        message = "unknown query parameter (accepted: model)"
        items = [ErrorItem(field=clip(key), message=message) for key in unknown]
        raise ApiError(422, summary(items), items)
    values = [value for _, value in pairs]
    if not values:
        return None
    for name in VARIANTS:
        if values == [name]:
            return name
    allowed = " or ".join(repr(v) for v in VARIANTS)
    message = f"Input should be {allowed}" if len(values) == 1 else "give model at most once"
    raise ApiError(422, f"model: {message}", [ErrorItem(field="model", message=message)])


def json_answer(
    pair: ServedPair, parsed: ParsedPassengers, probs: dict[VariantName, FloatArray], request_id: str
) -> bytes:
    """The PredictResponse body, written directly.

    For 10,000 rows, building a dict per prediction and handing it to json.dumps costs several
    times the model itself; this writes the same JSON from per-model string pieces.
    """
    pieces = [
        [
            f'"{name}":{{"survival_probability":{p!r},"survived":{"true" if p >= DECISION_THRESHOLD else "false"}}}'
            for p in column.tolist()
        ]
        for name, column in probs.items()
    ]
    marks = [""] * parsed.raw.shape[0]
    for i, fields in filled_fields(parsed.raw).items():
        marks[i] = ',"filled":' + json.dumps(list(fields), separators=(",", ":"))
    # A request id is plain characters (service/note.py's SANE_REQUEST_ID), so it needs no escaping.
    ids = [f'{{"id":"{request_id}/{i}",' for i in range(len(marks))]
    predictions = ",".join(
        first + ",".join(row) + mark + "}" for first, *row, mark in zip(ids, *pieces, marks, strict=True)
    )
    models = pair.versions_json[tuple(probs)]
    passengers = f',"passenger_ids":{json.dumps(parsed.passenger_ids)}' if parsed.passenger_ids is not None else ""
    return f'{{"request_id":"{request_id}","predictions":[{predictions}],"models":{models}{passengers}}}'.encode()


def submission_csv(parsed: ParsedPassengers, probs: FloatArray) -> str:
    """A Kaggle submission file: PassengerId,Survived."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["PassengerId", "Survived"])
    for pid, p in zip(parsed.passenger_ids or [], probs.tolist(), strict=True):
        writer.writerow([pid, int(p >= DECISION_THRESHOLD)])
    return out.getvalue()
