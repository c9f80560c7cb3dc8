"""Read a JSON file into a pydantic model, with one-line reasons for what can go wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class JsonFileError(ValueError):
    """The file is not valid JSON or does not fit the model; the message says why, without the path."""


def read_json_model(path: Path, model: type[ModelT]) -> ModelT:
    """Parse and validate `path` as `model`; OSError (e.g. FileNotFoundError) passes through for the caller."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JsonFileError(f"not valid JSON ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise JsonFileError(f"field {where}: {first['msg']} ({exc.error_count()} problem(s))") from None
