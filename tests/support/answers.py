"""Reading /predict answers in tests."""

from __future__ import annotations

from typing import Any


def answers(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A /predict answer's predictions without their ids (each request's are its own), for comparing two answers."""
    return [{key: value for key, value in row.items() if key != "id"} for row in body["predictions"]]
