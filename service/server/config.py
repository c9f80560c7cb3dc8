"""uvicorn's configuration, built from the service's one `Settings` object, and the limits the protocol enforces.

The guarded protocol reads its limits from the `ServiceConfig` it is constructed with, as uvicorn's own protocols
read `config.limit_concurrency`: one door for every setting, and nothing read again from the environment.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass
from typing import Any, Final

import uvicorn

from service.config import Settings

# File descriptors kept free of connections: the listener, log files, the models, the metrics files.
RESERVED_FILES: Final[int] = 64
GUARDED_PROTOCOL: Final[str] = "service.server.guard:GuardedHttpToolsProtocol"


@dataclass(frozen=True)
class Limits:
    """The bounds one worker enforces."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_pending_body_bytes: int
    max_url_bytes: int
    max_header_bytes: int
    max_headers: int
    send_timeout_s: float
    max_output_bytes: int
    min_client_rate: int
    max_body_chunks: int
    max_chunk_framing_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, file_limit: int) -> Limits:
        """The settings' limits, with the connection bound kept below the process's file limit."""
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=max(1, min(settings.max_connections, file_limit - RESERVED_FILES)),
            max_pending_body_bytes=settings.max_pending_body_bytes,
            max_url_bytes=settings.max_url_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            send_timeout_s=settings.send_timeout_s,
            max_output_bytes=settings.max_output_bytes,
            min_client_rate=settings.min_client_rate,
            max_body_chunks=settings.max_body_chunks,
            max_chunk_framing_bytes=settings.max_chunk_framing_bytes,
        )


class ServiceConfig(uvicorn.Config):
    """uvicorn's Config as the settings describe it, carrying the settings and the limits of the guarded protocol."""

    def __init__(self, settings: Settings, app: Any, **overrides: Any) -> None:
        # The graceful timeout bounds the whole stop: the drain comes out of it.
        finish_s = max(1, math.ceil(settings.graceful_timeout_s - min(settings.drain_s, settings.graceful_timeout_s)))
        options: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "workers": settings.web_concurrency,
            "timeout_keep_alive": settings.keep_alive_timeout_s,
            "timeout_graceful_shutdown": finish_s,
            "access_log": False,  # the service writes its own structured line per request
            "server_header": False,
            # The service never reads the client's address, so X-Forwarded-* need no rewriting on every request.
            "proxy_headers": False,
            # uvicorn's httptools protocol plus deadlines and bounds for slow and stalled clients.
            "http": GUARDED_PROTOCOL,
        }
        super().__init__(app, **{**options, **overrides})
        self.settings = settings
        self.limits = Limits.from_settings(settings, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
