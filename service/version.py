"""The service's name and version as the package installed them (pyproject.toml is their one source)."""

from __future__ import annotations

from importlib import metadata
from typing import Final

DISTRIBUTION: Final[str] = "titanic-bn-service"  # pyproject.toml's [project] name


def package_version() -> str:
    """The installed package's version, shown by /openapi.json and GET /v2."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"
