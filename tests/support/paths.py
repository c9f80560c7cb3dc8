"""Paths the tests read, and the rule for a prerequisite a user's machine may lack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import pytest

REPO_DIR: Final[Path] = Path(__file__).resolve().parents[2]
SHARED_DIR: Final[Path] = REPO_DIR.parent / "shared"
KAGGLE_DIR: Final[Path] = SHARED_DIR / "data" / "titanic"
SHIPPED_CSV_PATH: Final[Path] = REPO_DIR / "data" / "titanic.csv"
# Few epochs keep the session fixture fast; the behaviour under test does not depend on convergence.
FIXTURE_EPOCHS: Final[int] = 4


def need(condition: bool, reason: str) -> None:
    """Skip the calling test when `condition` is false, but fail under CI=true.

    A user's checkout may lack ../shared, Chromium or Docker; CI must have them all,
    so a missing prerequisite there is a broken pipeline, not a reason to skip.
    """
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but a prerequisite is missing: {reason}")
    pytest.skip(reason)
