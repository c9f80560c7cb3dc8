"""Outcomes fed back (POST /feedback), recorded atomically: all of a request's outcomes, or none of them."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from service.errors import MAX_ERRORS_LISTED, ApiError, summary
from service.schemas import ErrorItem
from service.store.records import KeyKind, Outcome, prediction_key
from service.store.tables import outcomes, predictions

# Keys per IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
KEYS_PER_QUERY: Final[int] = 400
# The start of the message for an id no recorded prediction has (the store retries those once, a moment later).
UNKNOWN: Final[str] = "no recorded prediction"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a POST /feedback did: outcomes given, predictions newly labelled, and those already labelled alike."""

    outcomes: int
    labelled: int
    already_labelled: int


def chunks(items: Sequence[object], size: int = KEYS_PER_QUERY) -> Iterator[Sequence[object]]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refuse(status: int, items: list[ErrorItem], total: int) -> ApiError:
    """The error naming the first MAX_ERRORS_LISTED problems of `total`."""
    return ApiError(status, summary(items, stopped=total > MAX_ERRORS_LISTED), items[:MAX_ERRORS_LISTED])


def distinct(given: list[Outcome]) -> dict[tuple[KeyKind, str], Outcome]:
    """The outcomes by what they name; 422 naming each key given twice with different outcomes."""
    first: dict[tuple[KeyKind, str], Outcome] = {}
    clashes: list[ErrorItem] = []
    for outcome in given:
        key = (outcome.kind, outcome.key)
        seen = first.setdefault(key, outcome)
        if seen.survived != outcome.survived:
            message = f"{outcome.key} is given twice with different outcomes ({seen.where} and {outcome.where})"
            clashes.append(outcome.problem(message))
    if clashes:
        raise refuse(422, clashes, len(clashes))
    return first


def record_outcomes(engine: sa.Engine, given: list[Outcome]) -> Recorded:
    """Record every outcome in one transaction, committed before this returns; ApiError (nothing recorded) when
    any names an unknown prediction, or contradicts another outcome or one already recorded."""
    wanted = distinct(given)
    now = time.time()
    with engine.begin() as connection:
        found = matched_predictions(connection, wanted)
        problems = [o.problem(f"{UNKNOWN} has {o.kind} {o.key}") for key, o in wanted.items() if key not in found]
        survived_of: dict[tuple[str, int], tuple[int, Outcome]] = {}
        for key, matched in found.items():
            outcome = wanted[key]
            for row in matched:
                earlier = survived_of.setdefault((row.request_id, row.row_index), (outcome.survived, outcome))
                if earlier[0] != outcome.survived:  # a prediction id and a passenger id name the same prediction
                    message = f"names the same prediction as {earlier[1].where} with a different outcome"
                    problems.append(outcome.problem(message))
        recorded = recorded_outcomes(connection, list(survived_of))
        conflicts = 0
        for pid, previous in recorded.items():
            survived, outcome = survived_of[pid]
            if previous != survived:
                message = f"prediction {pid[0]}/{pid[1]} already has outcome {previous}, this says {survived}"
                problems.append(outcome.problem(message, about_survived=True))
                conflicts += 1
        if problems:
            # Only contradictions of what is recorded: the request is well formed, the state disagrees (409).
            raise refuse(409 if conflicts == len(problems) else 422, problems, len(problems))
        new = [
            {
                "request_id": row.request_id,
                "row_index": row.row_index,
                "survived": survived_of[(row.request_id, row.row_index)][0],
                "labelled_at": now,
                "predicted_at": row.at,
                "p_batchnorm": row.p_batchnorm,
                "p_plain": row.p_plain,
                "answered": row.answered,
                "run_id": row.run_id,
            }
            for matched in found.values()
            for row in matched
            if (row.request_id, row.row_index) not in recorded
        ]
        unique = list({(r["request_id"], r["row_index"]): r for r in new}.values())
        if unique:
            connection.execute(outcomes.insert(), unique)
    return Recorded(outcomes=len(given), labelled=len(unique), already_labelled=len(recorded))


COPIED = (
    predictions.c.request_id,
    predictions.c.row_index,
    predictions.c.at,
    predictions.c.p_batchnorm,
    predictions.c.p_plain,
    predictions.c.answered,
    predictions.c.run_id,
)


def matched_predictions(
    connection: sa.Connection, wanted: dict[tuple[KeyKind, str], Outcome]
) -> dict[tuple[KeyKind, str], list[Any]]:
    """Each named key's recorded predictions (a passenger id may name several)."""
    found: dict[tuple[KeyKind, str], list[Any]] = {}
    by_id = {prediction_key(o.key): key for key, o in wanted.items() if o.kind == "prediction_id"}
    request_ids = list({k[0] for k in by_id if k is not None})
    for part in chunks(request_ids):
        # By request id, which the primary key's index finds; SQLite scans the whole table for a
        # (request_id, row_index) IN (VALUES ...) list (bench/bench_store.py, part 2). The rows are picked here.
        for row in connection.execute(sa.select(*COPIED).where(predictions.c.request_id.in_(part))):
            key = by_id.get((row.request_id, row.row_index))
            if key is not None:
                found.setdefault(key, []).append(row)
    passengers = [o.key for o in wanted.values() if o.kind == "passenger_id"]
    for part in chunks(passengers):
        query = sa.select(*COPIED, predictions.c.passenger_id).where(predictions.c.passenger_id.in_(part))
        for match in connection.execute(query):
            found.setdefault(("passenger_id", match.passenger_id), []).append(match)
    return found


def recorded_outcomes(connection: sa.Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The outcomes already recorded for these predictions."""
    wanted = set(keys)
    recorded: dict[tuple[str, int], int] = {}
    for part in chunks(list({request_id for request_id, _ in keys})):
        query = sa.select(outcomes.c.request_id, outcomes.c.row_index, outcomes.c.survived).where(
            outcomes.c.request_id.in_(part)
        )
        recorded.update({(r.request_id, r.row_index): r.survived for r in connection.execute(query)})
    return {key: survived for key, survived in recorded.items() if key in wanted}
