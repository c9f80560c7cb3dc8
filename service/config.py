"""Service settings, read from environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.champion import AnswerMode

# Settings whose values are secrets: an error about them never echoes the value.
SECRET_SETTINGS = frozenset({"api_keys", "admin_api_keys", "store_url"})  # a database URL may hold a password


class SettingsError(Exception):
    """A setting that cannot be used; the message is one line naming the variable and the problem."""


class ModelSettings(BaseSettings):
    """The models and the requests they answer."""

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
    reload_poll_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="Seconds between checks of what MODEL_DIR/current points at (a new run is swapped in); 0: off.",
    )
    batch_queue_max: int = Field(
        default=64,
        ge=1,
        description="Big bodies (over INLINE_MAX_BYTES), read in full, that may wait for or be in the one batch "
        "thread of a worker; past it (or BATCH_QUEUE_MAX_BYTES, the bound that protects memory) a 503 with "
        "Retry-After, never memory growth.",
    )
    batch_queue_max_bytes: int = Field(
        default=24 * 1024 * 1024,
        ge=1024,
        description="Bytes of big bodies that may wait for or be in the batch thread of a worker (503 past it).",
    )
    study_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest study.json GET /metrics reads (a larger one is reported as a problem, not parsed).",
    )
    file_read_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="GET /metrics waits this long for study.json (read in a thread); a hung file is reported.",
    )
    inline_max_bytes: int = Field(
        default=16_384,
        ge=0,
        description="Request bodies up to this size are parsed, computed and answered on the event loop; larger "
        "ones in a worker thread, one at a time, so that no big batch holds up the small requests.",
    )


class MonitorSettings(BaseSettings):
    """Input monitoring (GET /monitoring)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    monitor: bool = Field(default=True, description="Input monitoring (GET /monitoring); MONITOR=0 turns it off.")
    monitor_window: int = Field(
        default=1_000, ge=1, le=1_000_000, description="Served passengers each worker keeps in its window."
    )
    monitor_min_window: int = Field(
        default=100, ge=2, description="Fewer passengers (or known values) than this: the tests say not enough data."
    )
    monitor_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="False-alarm level of the whole drift verdict (Bonferroni inside)."
    )


class ServerSettings(BaseSettings):
    """The server, `python -m service`: address, workers, stopping, and the limits every connection is held to."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    host: str = Field(default="127.0.0.1", min_length=1, description="Bind address of `python -m service`.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of `python -m service` (0: any free one).")
    web_concurrency: int = Field(default=1, ge=1, le=64, description="Worker processes of `python -m service`.")
    graceful_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="SIGTERM: the most seconds from the signal to the exit."
    )
    drain_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="SIGTERM: seconds /ready answers 503 while the service still accepts requests (part of "
        "GRACEFUL_TIMEOUT_S), so a load balancer stops sending before the listener closes.",
    )
    keep_alive_timeout_s: int = Field(default=5, ge=1, le=3600, description="An idle keep-alive connection is closed.")
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="A request line and headers must arrive within this (else 408)."
    )
    body_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="A body must arrive within this after its headers (else 408)."
    )
    max_connections: int = Field(
        default=2_000,
        ge=1,
        description="Open connections per worker (capped below the file limit); past it the longest-waiting "
        "idle or stalled connection is closed, or the new one refused with a 503 when none waits.",
    )
    max_pending_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Bytes of unfinished request bodies a worker holds; past it the oldest stalled upload is closed.",
    )
    send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A client that takes none of its answer for this long (the answer's unsent bytes stay over "
        "the transport's high-water mark, or a closing connection's do not drain) is disconnected.",
    )
    max_output_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=65_536,
        description="Bytes of answers a worker holds for clients that do not read them; past it the connection "
        "that has not read for longest is disconnected.",
    )
    min_client_rate: int = Field(
        default=8_192,
        ge=0,
        description="Bytes per second below which a connection sending its request counts as slow: only such "
        "connections (and idle ones) are shed to make room; one quiet for a second counts as stalled.",
    )
    max_body_chunks: int = Field(
        default=4_096,
        ge=16,
        description="Most chunks in one chunked request body (400 above): each costs a parser callback.",
    )
    max_chunk_framing_bytes: int = Field(
        default=16_384,
        ge=1024,
        description="Bytes of chunk framing beyond the sizes (extensions, trailers) in one request (400 above).",
    )
    static_max_large_per_client: int = Field(
        default=4,
        ge=1,
        description="Static files over 64 KiB (/static, /docs/static) being sent at once to one client address; "
        "past it a 429 with Retry-After (behind a proxy every client shares its address).",
    )
    max_url_bytes: int = Field(default=8_192, ge=256, description="Longest request target (414 above).")
    max_header_bytes: int = Field(default=32_768, ge=1024, description="Largest request head (431 above).")
    max_headers: int = Field(default=100, ge=8, description="Most header fields in a request (431 above).")


class LogSettings(BaseSettings):
    """The access log."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    access_log: bool = Field(default=True, description="One structured line per request on stdout (0: off).")
    log_format: Literal["json", "text"] = Field(default="json", description="The access log's format.")


class KeySettings(BaseSettings):
    """API keys (service/auth.py)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    api_keys: SecretStr | None = Field(default=None, description="Comma-separated keys for the data routes.")
    api_keys_file: Path | None = Field(default=None, description="A file of data keys, one per line.")
    admin_api_keys: SecretStr | None = Field(default=None, description="Comma-separated keys for /admin/ routes.")
    admin_api_keys_file: Path | None = Field(default=None, description="A file of admin keys, one per line.")
    metrics_need_key: bool = Field(
        default=True, description="With keys set, the dashboard and /metrics* need one too (0: they stay open)."
    )


class StoreSettings(BaseSettings):
    """The prediction store, outcomes fed back, the live comparison and the champion (service/store/)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    store_url: str = Field(
        default="sqlite:///var/predictions.db",
        min_length=1,
        description="Where every prediction is recorded: a SQLAlchemy URL, sqlite:///PATH (relative to the working "
        "directory; four slashes for an absolute path) for one machine, postgresql+psycopg://... for several "
        "replicas; `none` turns recording off (and with it /feedback and /comparison).",
    )
    store_flush_interval_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="Each worker writes its queued predictions at least this often (what a kill -9 can lose).",
    )
    store_queue_max: int = Field(
        default=200_000,
        ge=1_000,
        description="Predictions a worker holds for the database; past it new ones are dropped and counted "
        "(store_dropped_total), the answers still go out.",
    )
    store_retention_rows: int | None = Field(
        default=10_000_000, ge=1_000, description="Most predictions kept; older ones (and their outcomes) go."
    )
    store_retention_days: float | None = Field(
        default=None, gt=0, description="Predictions older than this many days (and their outcomes) go; unset: kept."
    )
    store_connect_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Longest wait for the database on one connection attempt."
    )
    answer: AnswerMode = Field(
        default="both",
        description="Which model answers /predict: both, or a champion (the other still scores every request as "
        "the shadow); PUT /admin/champion changes it at run time on every worker and replica.",
    )
    control_poll_s: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="Seconds between a worker's reads of the shared champion in the store.",
    )
    comparison_window: int = Field(
        default=1_000,
        ge=10,
        le=1_000_000,
        description="GET /comparison: the most recent labelled predictions it also reports apart, and the "
        "recent unlabelled ones it estimates each model's accuracy on.",
    )
    max_feedback_outcomes: int = Field(default=100_000, ge=1, description="Most outcomes in one POST /feedback.")


SECTIONS: Final[tuple[type[BaseSettings], ...]] = (
    ModelSettings,
    MonitorSettings,
    StoreSettings,
    ServerSettings,
    LogSettings,
    KeySettings,
)


class Settings(KeySettings, LogSettings, ServerSettings, StoreSettings, MonitorSettings, ModelSettings):
    """Every knob of the service, in named sections; each field is read from the environment variable of its name."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    @classmethod
    def sections(cls) -> dict[str, list[str]]:
        """Each section's one-line title and the fields it holds, in the order they are documented."""
        return {(section.__doc__ or section.__name__).strip(): list(section.__annotations__) for section in SECTIONS}


def settings_error_line(exc: ValidationError) -> str:
    """One line naming each bad variable and its problem (never echoing a secret's value)."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "settings"
        shown = "" if name in SECRET_SETTINGS else f"={error['input']!r}"
        problems.append(f"{name.upper()}{shown}: {error['msg']}")
    return "bad setting " + "; ".join(problems)


def read_settings() -> Settings:
    """Read the settings from the environment; SettingsError with one line when one is unusable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(settings_error_line(exc)) from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return read_settings()
