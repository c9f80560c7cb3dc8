"""The README's configuration table is the settings model: every variable, its default and its range.

The table is the one place a user reads the settings; this test keeps it from drifting from
service/config.py (a new setting, a changed default or bound fails here until the table says so).
"""

from __future__ import annotations

import re
from typing import Any

import annotated_types as at
from support.paths import REPO_DIR

from service.config import Settings

OUTSIDE_THE_MODEL = {"PROMETHEUS_MULTIPROC_DIR"}  # read by prometheus_client and the launcher


def table_rows() -> dict[str, tuple[str, str]]:
    """Variable -> (default cell, allowed cell), one entry per variable named in a row."""
    text = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    table = text.split("| variable | default | allowed | meaning |", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines()[1:]:
        names_cell, default_cell, allowed_cell, _ = (c.strip() for c in line.strip("|").split(" | ", 3))
        names = re.findall(r"`([A-Z_]+)`", names_cell)
        defaults = [d.strip() for d in default_cell.split(", ")] if "," in default_cell else [default_cell] * len(names)
        allowed = [a.strip() for a in allowed_cell.split(", ")]
        allowed = allowed if len(allowed) == len(names) else [allowed_cell] * len(names)
        for name, default, bound in zip(names, defaults, allowed, strict=True):
            rows[name] = (default.strip("`"), bound)
    return rows


def shown(value: Any) -> str:
    """A default as the table writes it."""
    if isinstance(value, bool):
        return str(int(value))
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def bound_of(metadata: list[Any]) -> str | None:
    """The range a field's constraints allow, written as the table writes it (None: no numeric bound)."""
    kinds = {type(m): m for m in metadata}
    low_in, low_out = kinds.get(at.Ge), kinds.get(at.Gt)
    high_in, high_out = kinds.get(at.Le), kinds.get(at.Lt)
    low = f"{low_in.ge}" if low_in else None
    if low is not None and high_in is not None:
        return f"{low}-{high_in.le}"
    if low is not None and high_in is None and high_out is None:
        return f">= {low}"
    if low_out is not None:
        close = f"{high_in.le}]" if high_in is not None else f"{high_out.lt})" if high_out is not None else ""
        return f"({low_out.gt}, {close}"
    return None


def test_every_setting_is_in_the_table_with_its_default_and_range() -> None:
    rows = table_rows()
    fields = {name.upper(): field for name, field in Settings.model_fields.items()}
    assert set(rows) - OUTSIDE_THE_MODEL == set(fields)
    for name, field in fields.items():
        default, allowed = rows[name]
        assert default == shown(field.default), name
        bound = bound_of(field.metadata)
        if bound is not None:
            assert allowed.startswith(bound), (name, allowed, bound)
