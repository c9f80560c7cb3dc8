"""`python -m service --help` lists every setting, by section, from the Settings class itself."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.server.launcher import main


def test_help_lists_every_setting_once_with_its_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    for name, field in Settings.model_fields.items():
        assert text.count(f"  {name.upper()} (default ") == 1, name
        assert field.description is not None
        assert field.description in text
    sections = Settings.sections()
    assert sorted(n for names in sections.values() for n in names) == sorted(Settings.model_fields)
    for title in sections:
        assert f"\n{title}\n" in text
