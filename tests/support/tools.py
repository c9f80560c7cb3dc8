"""The scripts of tools/ as modules, for the tests that check what they write (tools/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from support.paths import REPO_DIR


def load_tool(name: str) -> ModuleType:
    """tools/NAME.py, imported as the module NAME."""
    spec = importlib.util.spec_from_file_location(name, REPO_DIR / "tools" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module
