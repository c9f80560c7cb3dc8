"""What the data plane hands to the store for one answered request, and the table rows it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final, Literal

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


def prediction_rows(served: Served) -> list[tuple[Any, ...]]:
    """The request's rows of the predictions table, in PREDICTION_COLUMNS' order (runs in the writer's thread)."""
    raw = served.raw
    filled = fill_missing(raw, served.pair.models["batchnorm"].metadata.preprocessing)
    n = served.rows
    # NaN (a value the request did not give) is stored as NULL: NaN != NaN finds it without a NumPy call per row.
    fares = [None if v != v else v for v in raw[:, FARE_INDEX].tolist()]
    ages = [None if v != v else v for v in raw[:, AGE_INDEX].tolist()]
    return list(
        zip(
            repeat(served.request_id, n),
            range(n),
            repeat(served.at, n),
            raw[:, PCLASS_INDEX].astype(int).tolist(),
            fares,
            ages,
            filled[:, FARE_INDEX].tolist(),
            filled[:, AGE_INDEX].tolist(),
            served.probs["batchnorm"].tolist(),
            served.probs["plain"].tolist(),
            repeat(answered_label(served.answered), n),
            repeat(served.pair.run_id, n),
            served.passenger_ids if served.passenger_ids is not None else repeat(None, n),
            strict=False,
        )
    )


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
    if not slash or not request_id or not row.isdigit() or len(row) > 9:
        return None
    return request_id, int(row)
