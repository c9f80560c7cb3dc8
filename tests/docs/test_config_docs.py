"""docs/configuration.md is generated from `Settings` (tools/gen_config_docs.py) and says what the service reads.

The committed page must equal the generator's output (a new setting, a changed default, bound or description
fails here until `python tools/gen_config_docs.py` is rerun), and each variable the page names must really set
its field: the generator's naming rules are checked against pydantic-settings itself, nested sections included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from support.paths import REPO_DIR
from support.tools import load_tool

from service.config import Settings

GENERATOR = REPO_DIR / "tools" / "gen_config_docs.py"
PAGE = REPO_DIR / "docs" / "configuration.md"


gen = load_tool("gen_config_docs")


def probe_value(field: Any, default: Any) -> tuple[str, Any]:
    """An environment value other than the default that the field accepts, and what it should parse to."""
    annotation = field.annotation
    if annotation is bool:
        return ("0", False) if default else ("1", True)
    # An optional number (`int | None`) is probed as the number.
    number = next((t for t in (annotation, *getattr(annotation, "__args__", ())) if t in (int, float)), None)
    if number is not None:
        low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
        if default is None:
            value = (low or 1) + 1 if number is int else 0.5
        else:
            value = default + 1 if number is int else default / 2 if default else 0.5
        if low is not None and value < low:
            value = low
        return str(value), value
    if gen.literal_choices(annotation):
        other = next(choice for choice in gen.literal_choices(annotation) if choice != default)
        return other, other
    if SecretStr in (annotation, *getattr(annotation, "__args__", ())):
        return "k" * 20, "k" * 20
    if Path in (annotation, *getattr(annotation, "__args__", ())):
        return "/tmp/probe-dir", Path("/tmp/probe-dir")
    return "probe.example", "probe.example"


def read_back(settings: BaseSettings, path: tuple[str, ...]) -> Any:
    """The value at `path` (attribute names) in a settings object, secrets revealed."""
    value: Any = settings
    for name in path:
        value = getattr(value, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_the_committed_page_is_the_generators_output() -> None:
    assert PAGE.read_text(encoding="utf-8") == gen.render(), "stale: run python tools/gen_config_docs.py"


@pytest.mark.system
def test_check_mode_fails_on_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(PAGE.read_text(encoding="utf-8").replace("MAX_BATCH_SIZE", "MAX_BATCH"), encoding="utf-8")
    run = [sys.executable, str(GENERATOR), "--check", "--output"]
    failed = subprocess.run([*run, str(stale)], capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert "stale" in failed.stdout
    assert subprocess.run([*run, str(PAGE)], capture_output=True, timeout=60, check=False).returncode == 0


def test_every_field_has_a_row_with_its_default_and_description() -> None:
    rows = {row.env: row for section in gen.sections() for row in section.rows}
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    page = PAGE.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        row = rows[name.upper()]
        assert row.description == " ".join((field.description or "").split()), name
        assert row.description, f"{name.upper()} has no description in service/config.py"
        assert f"| `{name.upper()}` |" in page
    assert rows["MAX_BATCH_SIZE"].default == str(Settings.model_fields["max_batch_size"].default)
    assert rows["MONITOR_ALPHA"].allowed == "number, > 0, < 1"
    assert rows["KEEP_ALIVE_TIMEOUT_S"].allowed == "integer, >= 1, <= 3600"
    assert rows["LOG_FORMAT"].allowed == "`json`, `text`"


def test_every_variable_the_page_names_sets_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    for section in gen.sections():
        for row in section.rows:
            field = Settings.model_fields[row.path[-1]]
            env, expected = probe_value(field, field.default)
            monkeypatch.setenv(row.env, env)
            assert read_back(Settings(), row.path) == expected, row.env
            monkeypatch.delenv(row.env)


class Limits(BaseModel):
    """Limits of one request."""

    max_rows: int = Field(default=10, ge=1, description="Most rows.")


class Logging(BaseSettings):
    """How the service logs."""

    model_config = SettingsConfigDict(env_prefix="LOG_")
    format: Literal["json", "text"] = Field(default="json", description="The format.")


class Sectioned(BaseSettings):
    """Settings split into sections, as service/config.py is about to be."""

    model_config = SettingsConfigDict(env_nested_delimiter="__")
    model_dir: Path = Field(default=Path("models"), description="Where runs are.")
    limits: Limits = Field(default_factory=Limits, title="Request limits")
    logging: Logging = Field(default_factory=Logging)


def test_nested_models_are_named_sections_with_the_variables_pydantic_settings_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = {section.title: section for section in gen.sections(Sectioned)}
    assert list(found) == ["Service", "Request limits", "Logging"]
    assert found["Request limits"].intro == "Limits of one request."
    [limit] = found["Request limits"].rows
    [log_format] = found["Logging"].rows
    assert (limit.env, limit.default, limit.allowed) == ("LIMITS__MAX_ROWS", "10", "integer, >= 1")
    assert log_format.env == "LOG_FORMAT"
    monkeypatch.setenv("LIMITS__MAX_ROWS", "7")
    assert Sectioned().limits.max_rows == 7
    monkeypatch.setenv("LOG_FORMAT", "text")
    assert Sectioned().logging.format == "text"
    page = gen.render(Sectioned)
    assert "\n## Request limits\n\nLimits of one request.\n" in page
    assert "| `LIMITS__MAX_ROWS` | `10` | integer, >= 1 | Most rows. |" in page


class Paths(BaseSettings):
    """Where things are: the model directory."""

    model_dir: Path = Field(default=Path("models"), description="Where runs are.")


class Server(BaseSettings):
    """The server."""

    port: int = Field(default=8000, ge=0, le=65535, description="The port.")


class Mixed(Server, Paths):
    """Settings in sections by inheritance, as service/config.py holds them."""

    log_level: str = Field(default="info", description="Declared on the class itself.")


def test_settings_inherited_from_section_classes_are_shown_in_those_sections() -> None:
    found = gen.sections(Mixed)
    assert [(s.title, [r.env for r in s.rows]) for s in found] == [
        ("Other", ["LOG_LEVEL"]),
        ("Where things are", ["MODEL_DIR"]),
        ("The server", ["PORT"]),
    ]
    assert found[1].intro == "Where things are: the model directory."
    assert found[2].intro == ""  # the docstring is the title


def test_each_section_of_the_real_settings_holds_its_classs_fields() -> None:
    by_title = {section.title: [row.path[-1] for row in section.rows] for section in gen.sections()}
    for base in gen.mixin_sections(Settings):
        title, _ = gen.heading(base.__doc__ or base.__name__)
        assert by_title[title] == [name for name in vars(base)["__annotations__"] if name in Settings.model_fields]
    assert sum(len(names) for names in by_title.values()) == len(Settings.model_fields)
