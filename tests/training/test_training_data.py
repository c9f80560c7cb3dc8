"""The CSV loader: any CSV with the four columns works, bad data fails with the column and row named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.paths import SHIPPED_CSV_PATH

from training.data import DataError, load_csv, stratified_split

GOOD_ROWS = "\n".join(["1,1,71.28,38", "0,3,7.25,", "1,2,13,4", "0,3,8.05,35"] * 3)


def write(tmp_path: Path, text: str) -> Path:
    """A CSV file with `text` as its content."""
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_shipped_csv() -> None:
    ds = load_csv(SHIPPED_CSV_PATH)
    assert ds.raw.shape == (891, 3)
    assert int(ds.labels.sum()) == 342
    assert int(np.isnan(ds.raw[:, 2]).sum()) == 177
    assert len(ds.sha256) == 64


def test_load_kaggle_train_csv_unchanged(kaggle_train_path: Path) -> None:
    ds = load_csv(kaggle_train_path)
    shipped = load_csv(SHIPPED_CSV_PATH)
    assert ds.n_rows == 891
    # Same passengers, other row order: the sorted columns must agree.
    for col in range(3):
        assert np.array_equal(np.sort(ds.raw[:, col]), np.sort(shipped.raw[:, col]), equal_nan=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("Survived,Pclass,Fare,Age\n", "header but no data rows"),
        ("Survived,Pclass,Age\n1,1,3\n", "missing column(s) Fare"),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,1,abc,3\n",
            "column Fare, row 13: must be a number in [0, 10000], or null/empty when unknown (got 'abc', not a number",
        ),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,4,7,3\n",
            "column Pclass, row 13: must be 1, 2 or 3 (got '4')",
        ),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,1,-1,3\n",
            "column Fare, row 13: must be a number in [0, 10000], or null/empty when unknown (got '-1')",
        ),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,1,inf,3\n",
            "column Fare, row 13: must be a number in [0, 10000], or null/empty when unknown (got 'inf', not a",
        ),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,1,nan,3\n",
            "column Fare, row 13: must be a number in [0, 10000], or null/empty when unknown (got 'nan', not a",
        ),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,1,7,0\n",
            "column Age, row 13: must be a number in (0, 120], or null/empty when unknown (got '0')",
        ),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,1,7,121\n",
            "column Age, row 13: must be a number in (0, 120], or null/empty when unknown (got '121')",
        ),
        ("Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n2,1,7,3\n", "column Survived, row 13: must be 0 or 1 (got '2')"),
        (
            "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n,1,7,3\n",
            "column Survived, row 13: must be 0 or 1 (it is missing)",
        ),
        ("Survived,Pclass,Fare,Age\n1,1,7,3\n0,1,7,3\n0,2,8,4\n", "only 2 row(s) with Survived=0"),
        (
            "PassengerId,Survived,Pclass,Fare,Age\n" + "\n".join(f"{i},0,1,7,3" for i in range(9)) + "\n9,1,x,1\n",
            "column Pclass, row 10 (PassengerId 9): must be 1, 2 or 3 (got 'x', not an integer",
        ),
    ],
)
def test_load_rejects_bad_data_naming_column_and_row(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError) as excinfo:
        load_csv(write(tmp_path, text))
    assert message in str(excinfo.value)


def test_load_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"Survived,Pclass,Fare,Age\n1,1,7,3\xff\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_csv(path)


def test_load_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


def test_load_keeps_missing_age_and_fare_as_nan(tmp_path: Path) -> None:
    ds = load_csv(write(tmp_path, "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,2,,30\n"))
    assert np.isnan(ds.raw[1, 2])
    assert ds.raw[0].tolist() == [1.0, 71.28, 38.0]
    assert np.isnan(ds.raw[-1, 1])


def test_missing_fare_is_filled_with_the_training_median_of_its_class(tmp_path: Path) -> None:
    from survival.features import fit_preprocessing, preprocess

    ds = load_csv(write(tmp_path, "Survived,Pclass,Fare,Age\n" + GOOD_ROWS + "\n1,2,,30\n0,1,,\n"))
    prep = fit_preprocessing(ds.raw)
    known = ~np.isnan(ds.raw[:, 1])
    for cls in (1, 2, 3):
        assert prep.fare_fill[cls - 1] == np.median(ds.raw[known & (ds.raw[:, 0] == cls), 1])
    filled = preprocess(ds.raw, prep)
    assert filled[-2].tolist() == [2.0, prep.fare_fill[1], 30.0]
    assert filled[-1].tolist() == [1.0, prep.fare_fill[0], prep.age_fill]


def test_split_is_seeded_stratified_80_20() -> None:
    labels = load_csv(SHIPPED_CSV_PATH).labels
    train, val = stratified_split(labels, seed=0)
    assert (train.size, val.size) == (712, 179)
    assert set(train).isdisjoint(val)
    assert abs(labels[train].mean() - labels[val].mean()) < 0.01
    again, _ = stratified_split(labels, seed=0)
    other, _ = stratified_split(labels, seed=1)
    assert np.array_equal(train, again)
    assert not np.array_equal(train, other)
