"""What the data plane hands to the store for one answered request, and the table rows it becomes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, groupby, repeat
from typing import Any, Final, Literal

import numpy as np

from service.pair import ServedPair
from service.schemas import ErrorItem
from survival.features import AGE_INDEX, FARE_INDEX, PCLASS_INDEX, FloatArray, fill_missing
from survival.variants import VariantName

PREDICTION_COLUMNS: Final[tuple[str, ...]] = (
    "request_id",
    "row_index",
    "at",
    "pclass",
    "fare",
    "age",
    "fare_filled",
    "age_filled",
    "p_batchnorm",
    "p_plain",
    "answered",
    "run_id",
    "passenger_id",
)
BOTH: Final[str] = "both"
KeyKind = Literal["prediction_id", "passenger_id"]


@dataclass(frozen=True, slots=True)
class Served:
    """One answered request: its id and time, the passengers as received, both models' probabilities, who answered
    and the pair that computed them (its run, and the fill values the models were given)."""

    request_id: str
    at: float
    raw: FloatArray
    probs: dict[VariantName, FloatArray]
    answered: tuple[VariantName, ...]
    pair: ServedPair
    passenger_ids: list[str] | None

    @property
    def rows(self) -> int:
        """Passengers in the request."""
        return int(self.raw.shape[0])


def answered_label(answered: tuple[VariantName, ...]) -> str:
    """The `answered` column: both, or the one model that answered."""
    return answered[0] if len(answered) == 1 else BOTH


def prediction_rows(batch: Sequence[Served]) -> list[tuple[Any, ...]]:
    """The rows of a batch of requests in the predictions table, in PREDICTION_COLUMNS' order (the writer's thread).

    Built a column at a time for the whole batch: a handful of NumPy calls per batch instead of per request, which
    is most of what the writer's thread would otherwise take from the event loop (bench/bench_store.py, part 1).
    """
    rows: list[tuple[Any, ...]] = []
    # By identity: a pair is the same object for all of a run's requests (== would compare its arrays).
    for _, group in groupby(batch, key=lambda served: id(served.pair)):
        requests = list(group)
        pair = requests[0].pair
        raw = np.concatenate([s.raw for s in requests]) if len(requests) > 1 else requests[0].raw
        filled = fill_missing(raw, pair.models["batchnorm"].metadata.preprocessing)

        rows.extend(
            zip(
                each_row(requests, lambda s: s.request_id),
                chain.from_iterable(range(s.rows) for s in requests),
                each_row(requests, lambda s: s.at),
                raw[:, PCLASS_INDEX].astype(int).tolist(),
                nulls_for_nan(raw[:, FARE_INDEX]),
                nulls_for_nan(raw[:, AGE_INDEX]),
                filled[:, FARE_INDEX].tolist(),
                filled[:, AGE_INDEX].tolist(),
                np.concatenate([s.probs["batchnorm"] for s in requests]).tolist(),
                np.concatenate([s.probs["plain"] for s in requests]).tolist(),
                each_row(requests, lambda s: answered_label(s.answered)),
                repeat(pair.run_id),
                chain.from_iterable(
                    s.passenger_ids if s.passenger_ids is not None else repeat(None, s.rows) for s in requests
                ),
                strict=False,  # zip stops at the row-index column, which is exactly the batch's rows
            )
        )
    return rows


def each_row(requests: list[Served], value: Callable[[Served], Any]) -> Iterator[Any]:
    """A per-request value repeated for each of the request's rows, over the requests."""
    return chain.from_iterable(repeat(value(s), s.rows) for s in requests)


def nulls_for_nan(column: FloatArray) -> list[float | None]:
    """A column as Python values, NULL (None) for NaN: a value the request did not give."""
    values: list[float | None] = column.tolist()
    if np.isnan(column).any():
        values = [None if v != v else v for v in values]  # NaN != NaN
    return values


@dataclass(frozen=True, slots=True)
class Outcome:
    """One outcome as the client sent it: what it names, the outcome, and where it was in the body."""

    kind: KeyKind
    key: str
    survived: int
    where: str  # how a message names it: "outcomes[3]" (JSON) or "row 3" (CSV)
    id_field: str  # how an error's `field` names its id: "outcomes[3].prediction_id", or the CSV's column
    survived_field: str
    row: int | None = None  # the CSV data row (from 1)

    def problem(self, message: str, *, about_survived: bool = False) -> ErrorItem:
        """An error item about this outcome's id (or its outcome)."""
        field = self.survived_field if about_survived else self.id_field
        return ErrorItem(field=field, row=self.row, message=message)


def prediction_key(text: str) -> tuple[str, int] | None:
    """`<request id>/<row>` as (request id, row), or None when it is not one."""
    request_id, slash, row = text.rpartition("/")
    # ASCII digits only: str.isdigit() also passes "²" (which int() refuses) and other scripts' digits. A row is
    # written as the answer writes it: "01" is refused rather than guessed to be row 1.
    if not slash or not request_id or not (row.isascii() and row.isdigit()) or len(row) > 9:
        return None
    if row != "0" and row.startswith("0"):
        return None
    return request_id, int(row)
