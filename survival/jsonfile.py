"""Read a JSON file into a pydantic model, with one-line reasons for what can go wrong."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Final, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

# Far above any checkpoint metadata or study file this project writes (the largest, the full study with every part,
# is results/study.json).
MAX_JSON_BYTES: Final[int] = 16 * 1024 * 1024


class JsonFileError(ValueError):
    """The file is not valid JSON or does not fit the model; the message says why, without the path."""


def _refuse_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity, which no JSON reader downstream (a browser, JSONResponse) does.
    raise JsonFileError(f"not valid JSON ({name} is not a JSON number)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e999 parses as infinity: the same problem as a literal Infinity.
        raise JsonFileError(f"not valid JSON (the number {text[:40]} overflows a float)")
    return value


def read_json_model(path: Path, model: type[ModelT]) -> ModelT:
    """Parse and validate `path` as `model`; OSError (e.g. FileNotFoundError) passes through for the caller."""
    with path.open("rb") as fh:
        raw = fh.read(MAX_JSON_BYTES + 1)
    return parse_json_model(raw, model)


def parse_json_model(raw: bytes, model: type[ModelT]) -> ModelT:
    """Parse and validate the bytes of a JSON file as `model`; JsonFileError naming the problem."""
    if len(raw) > MAX_JSON_BYTES:
        raise JsonFileError(f"larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB; not a file this project writes")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonFileError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer over Python's digit limit
        raise JsonFileError(f"not valid JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise JsonFileError("not valid JSON (nested too deeply)") from None
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise JsonFileError(f"field {where}: {first['msg']} ({exc.error_count()} problem(s))") from None
    bad = _non_finite(result, ())
    if bad is not None:
        # A string such as "NaN" or "1e999" validates as a float field: refused here, for every model alike.
        raise JsonFileError(f"field {'.'.join(bad) or '(top level)'}: not a finite number")
    return result


def _non_finite(value: object, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The path of the first non-finite float inside a validated value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items: Iterable[tuple[object, object]]
    if isinstance(value, BaseModel):
        items = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, (*path, str(key)))
        if found is not None:
            return found
    return None
