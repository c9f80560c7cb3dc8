"""One structured line per request (JSON or text) on stdout, and the request id every answer carries.

A line holds the time, method, route template, status, duration, rows predicted, models that answered,
the run id of the models and the request id; never a body, a header value other than a sane
X-Request-ID, a query string, a key or the client's address.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from starlette.types import Scope

LOGGER_NAME: Final[str] = "service.access"
REQUEST_ID_HEADER: Final[bytes] = b"x-request-id"
# A client's id is kept only when it is short and plain; anything else gets a generated one.
SANE_REQUEST_ID: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What the predict route leaves in the request's scope for the line.
ROWS: Final[str] = "service.rows"
MODELS: Final[str] = "service.models"
RUN_ID: Final[str] = "service.run_id"


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is sane, else a new random one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def note_answer(scope: Scope, rows: int, models: tuple[str, ...], run_id: str) -> None:
    """Record what a prediction answered, for its log line."""
    scope[ROWS] = rows
    scope[MODELS] = models
    scope[RUN_ID] = run_id


def served_run_id(scope: Scope) -> str | None:
    """The run id of the models the request was answered with (the current ones, for other routes)."""
    run_id = scope.get(RUN_ID)
    if run_id is not None:
        return str(run_id)
    registry = getattr(getattr(scope.get("app"), "state", None), "registry", None)
    current = getattr(registry, "run_id", None)
    return str(current) if current is not None else None


class AccessLog:
    """Writes the request lines through the `service.access` logger (its own stdout handler unless one is set)."""

    def __init__(self, log_format: str) -> None:
        self.json = log_format == "json"
        self.logger = logging.getLogger(LOGGER_NAME)
        if not self.logger.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)
            self.logger.propagate = False
            self.logger.setLevel(logging.INFO)

    def write(self, scope: Scope, method: str, route: str, status: int, seconds: float, rid: str) -> None:
        """Log one finished request."""
        fields: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1e3, 3),
            "rows": scope.get(ROWS),
            "models": list(scope.get(MODELS, ())),
            "run_id": served_run_id(scope),
            "request_id": rid,
        }
        if self.json:
            line = json.dumps(fields, separators=(",", ":"))
        else:
            line = " ".join(
                f"{key}={','.join(value) if isinstance(value, list) else value}" for key, value in fields.items()
            )
        self.logger.info(line)
