"""Service settings, read from environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; each field is read from the environment variable of the same name."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    model_dir: Path = Field(default=Path("models"), description="Directory written by `python -m training`.")
    max_batch_size: int = Field(default=10_000, ge=1, description="Most passengers in one request.")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above it)."
    )
    compute_threads: int = Field(
        default=1,
        ge=1,
        description="Threads for NumPy's BLAS (inference). At this model size a second "
        "thread only adds synchronisation, and on a busy machine it costs far more.",
    )
    inline_max_rows: int = Field(
        default=2_000,
        ge=0,
        description="Batches up to this many rows are computed on the event loop; larger ones in a worker thread.",
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
