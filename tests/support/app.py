"""The one way the tests build a client of the app in process (its lifespan runs inside the `with` block)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app


def app_client(settings: Settings | Path, **client_options: Any) -> TestClient:
    """A TestClient of `create_app(settings)` (a model directory stands for Settings(model_dir=...))."""
    config = settings if isinstance(settings, Settings) else Settings(model_dir=settings)
    return TestClient(create_app(config), **client_options)
