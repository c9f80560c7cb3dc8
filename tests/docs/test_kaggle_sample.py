"""data/kaggle-test-sample.csv is what data/README.md says: lines of Kaggle's test.csv, unchanged."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from support.paths import REPO_DIR

SAMPLE = REPO_DIR / "data" / "kaggle-test-sample.csv"
KAGGLE_LINES = [*range(1, 17), 154]  # 1-based lines of Kaggle's test.csv, the header first


def test_the_sample_has_the_sha256_and_rows_data_readme_states() -> None:
    readme = (REPO_DIR / "data" / "README.md").read_text(encoding="utf-8")
    section = readme.split("## `kaggle-test-sample.csv`", 1)[1]
    stated = re.search(r"^- sha256 `([0-9a-f]{64})`, (\d+) bytes", section, re.MULTILINE)
    assert stated is not None
    data = SAMPLE.read_bytes()
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (stated.group(1), int(stated.group(2)))
    rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
    assert [row["PassengerId"] for row in rows] == [str(i) for i in range(892, 907)] + ["1044"]
    assert [row["PassengerId"] for row in rows if not row["Fare"]] == ["1044"]
    assert {row["Pclass"] for row in rows} == {"1", "2", "3"}
    assert any(not row["Age"] for row in rows)


def test_every_line_is_kaggles_own(kaggle_test_path: Path) -> None:
    kaggle = kaggle_test_path.read_bytes().splitlines(keepends=True)
    assert SAMPLE.read_bytes() == b"".join(kaggle[line - 1] for line in KAGGLE_LINES)
