"""Load and validate a labelled Titanic CSV, and make the seeded stratified split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import train_test_split

from survival.checkpoint import sha256_file
from survival.features import FEATURES, FloatArray
from survival.rules import FIELDS, RULES, echo, parse_column

LABEL: Final[str] = "Survived"
LABEL_VALUES: Final[tuple[str, ...]] = ("0", "1")
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (LABEL, *FEATURES)
# Fewer rows of a class than this and a stratified 80/20 split cannot put it on both sides.
MIN_ROWS_PER_CLASS: Final[int] = 5

IntArray = npt.NDArray[np.int64]


class DataError(ValueError):
    """The CSV cannot be used; the message names the file, the column and the row."""


@dataclass(frozen=True)
class Dataset:
    """Validated rows: raw features (NaN for a missing Fare or Age), labels, and where they came from."""

    raw: FloatArray
    labels: IntArray
    file_name: str
    sha256: str

    @property
    def n_rows(self) -> int:
        """Number of passengers."""
        return int(self.labels.shape[0])


def load_csv(path: Path) -> Dataset:
    """Read a CSV with at least Survived, Pclass, Fare, Age; other columns are ignored."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a well-formed CSV ({str(exc).strip()})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})")
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    ids = frame["PassengerId"].tolist() if "PassengerId" in frame.columns else None

    def where(i: int) -> str:
        # Row numbers count data rows from 1 (the header is not a row; pandas skips blank lines).
        return f"row {i + 1}" + (f" (PassengerId {ids[i]})" if ids is not None else "")

    labels_text = frame[LABEL].str.strip(" \t")
    bad_label = ~labels_text.isin(LABEL_VALUES).to_numpy()
    if bad_label.any():
        i = int(np.flatnonzero(bad_label)[0])
        got = "it is missing" if not labels_text.iloc[i] else f"got {echo(labels_text.iloc[i])}"
        raise DataError(f"{path}: column {LABEL}, {where(i)}: must be 0 or 1 ({got})")
    survived = labels_text.astype(np.float64).to_numpy()
    # The features follow the service's rules exactly (survival/rules.py); the first violation stops the run.
    columns = []
    for field in FIELDS:
        values, violations = parse_column(field, frame[RULES[field].column].tolist(), limit=1)
        if violations:
            first = violations[0]
            raise DataError(f"{path}: column {RULES[field].column}, {where(first.index)}: {first.message}")
        columns.append(values)
    pclass, fare, age = columns

    labels = survived.astype(np.int64)
    for cls in (0, 1):
        count = int((labels == cls).sum())
        if count < MIN_ROWS_PER_CLASS:
            raise DataError(
                f"{path}: column {LABEL}: only {count} row(s) with {LABEL}={cls}; need at least "
                f"{MIN_ROWS_PER_CLASS} of each class to make a stratified train/validation split"
            )
    raw = np.column_stack([pclass, fare, age]).astype(np.float64)
    return Dataset(raw=raw, labels=labels, file_name=path.name, sha256=sha256_file(path))


def stratified_split(labels: IntArray, seed: int, val_fraction: float = 0.2) -> tuple[IntArray, IntArray]:
    """Indices of a seeded stratified split: (train, validation)."""
    indices = np.arange(labels.shape[0])
    train_idx, val_idx = train_test_split(indices, test_size=val_fraction, random_state=seed, stratify=labels)
    return np.sort(train_idx).astype(np.int64), np.sort(val_idx).astype(np.int64)
