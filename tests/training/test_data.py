"""The shipped data/titanic.csv: its pinned sha256, its schema, and agreement with Kaggle's train.csv."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from support.paths import REPO_DIR, SHIPPED_CSV_PATH

BUILD_SCRIPT = REPO_DIR / "data" / "build_titanic.py"
DATA_README = REPO_DIR / "data" / "README.md"
HEADER = "Survived,Pclass,Name,Sex,Age,SibSp,Parch,Fare,Embarked"
# Compared as the exact text of each field: the build writes numbers the way Kaggle does (7.25, 22, 0.42).
IDENTICAL_COLUMNS = ["Survived", "Pclass", "Age", "SibSp", "Parch", "Fare", "Embarked"]
# The source one-hot encodes Sex and has all flags 0 for this passenger, so the build leaves Sex empty.
UNKNOWN_SEX_NAME = "Cumings, Mrs. John Bradley (Florence Briggs Thayer)"


def read_as_text(path: Path) -> pd.DataFrame:
    """Read a CSV keeping every field as its exact text ("" for an empty field)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    """The shipped CSV, all fields as text."""
    return read_as_text(SHIPPED_CSV_PATH)


def load_build_script() -> ModuleType:
    """Import data/build_titanic.py as a module (it does nothing on import)."""
    spec = importlib.util.spec_from_file_location("build_titanic", BUILD_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sha256_matches_script_constant_and_readme() -> None:
    digest = hashlib.sha256(SHIPPED_CSV_PATH.read_bytes()).hexdigest()
    assert digest == load_build_script().EXPECTED_SHA256
    stated = re.search(r"^- sha256 `([0-9a-f]{64})`", DATA_README.read_text(encoding="utf-8"), re.MULTILINE)
    assert stated is not None
    assert stated.group(1) == digest


def test_header_and_line_endings() -> None:
    raw = SHIPPED_CSV_PATH.read_bytes()
    assert raw.split(b"\n", 1)[0].decode("ascii") == HEADER
    assert b"\r" not in raw
    assert raw.endswith(b"\n")


def test_shape_and_counts(shipped: pd.DataFrame) -> None:
    assert list(shipped.columns) == HEADER.split(",")
    assert len(shipped) == 891
    assert (shipped["Survived"] == "1").sum() == 342
    assert (shipped["Age"] == "").sum() == 177
    assert shipped.loc[shipped["Sex"] == "", "Name"].tolist() == [UNKNOWN_SEX_NAME]
    assert (shipped["Embarked"] == "").sum() == 2
    assert shipped["Name"].is_unique
    assert shipped["Name"].tolist() == sorted(shipped["Name"])


def test_matches_kaggle_train(shipped: pd.DataFrame, kaggle_train_path: Path) -> None:
    kaggle = read_as_text(kaggle_train_path)
    # Both files are parsed as CSV, so Kaggle's doubled quotes inside names ("Anna ""Annie""") are undone
    # the same way on both sides; the names then match exactly and one-to-one for all 891 passengers.
    assert kaggle["Name"].is_unique
    assert shipped["Name"].is_unique
    assert set(kaggle["Name"]) == set(shipped["Name"])
    merged = shipped.merge(kaggle, on="Name", how="inner", suffixes=("", "_kaggle"), validate="one_to_one")
    assert len(merged) == 891

    for column in IDENTICAL_COLUMNS:
        differing = merged.loc[merged[column] != merged[f"{column}_kaggle"], "Name"].tolist()
        assert differing == [], f"{column} differs from Kaggle for {differing[:5]}"

    # Same 177 passengers without an Age on both sides (implied by the loop above, stated for clarity).
    assert ((merged["Age"] == "") == (merged["Age_kaggle"] == "")).all()
    assert (merged["Age"] == "").sum() == 177

    sex_differs = merged.loc[merged["Sex"] != merged["Sex_kaggle"]]
    assert sex_differs["Name"].tolist() == [UNKNOWN_SEX_NAME]
    assert sex_differs["Sex"].tolist() == [""]
