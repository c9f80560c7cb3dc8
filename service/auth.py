"""API keys, off unless configured: which routes need one, and the check every request on them passes.

Keys come from API_KEYS / ADMIN_API_KEYS (comma-separated) and API_KEYS_FILE / ADMIN_API_KEYS_FILE
(one key per line, `#` comments: a Docker or Kubernetes secret mount). Only their SHA-256 digests are
kept; a presented key's digest is compared with `hmac.compare_digest` against every stored digest (no
early exit, so the time taken says nothing about which key came close). `/health` and `/ready` stay
open for probes, the API documentation and the dashboard's scripts and styles (`/static`) need no key;
the dashboard and `/metrics*` need one unless METRICS_NEED_KEY=0; every other route serves data and
needs a key, and `/admin/...` an admin key (which also opens every data route).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

from fastapi import Request
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.types import Scope

from service.config import Settings, SettingsError
from service.telemetry import Telemetry

MIN_KEY_LENGTH: Final[int] = 16
OPEN_PATHS: Final[frozenset[str]] = frozenset(
    {"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
METRICS_PATHS: Final[frozenset[str]] = frozenset({"/", "/metrics", "/metrics/prometheus"})
DOCS_PREFIX: Final[str] = "/docs/"
ADMIN_PREFIX: Final[str] = "/admin/"
CHALLENGE: Final[tuple[str, str]] = ("WWW-Authenticate", 'Bearer realm="titanic-survival"')


class Access(Enum):
    """What a key may call."""

    DATA = "data"
    ADMIN = "admin"


def digest(key: str) -> bytes:
    """The SHA-256 digest a key is kept and compared as."""
    return hashlib.sha256(key.encode()).digest()


def read_keys(inline: SecretStr | None, file: Path | None, variable: str) -> list[str]:
    """The keys of one scope from its variable and its file; SettingsError (never echoing a key) when unusable."""
    keys = [key.strip() for key in inline.get_secret_value().split(",")] if inline is not None else []
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise SettingsError(f"bad setting {variable}_FILE={str(file)!r}: cannot read it ({reason})") from None
        keys += [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    keys = [key for key in keys if key]
    short = sum(len(key) < MIN_KEY_LENGTH for key in keys)
    if short:
        raise SettingsError(f"bad setting {variable}: {short} key(s) shorter than {MIN_KEY_LENGTH} characters")
    return keys


def matches(candidate: bytes, stored: tuple[bytes, ...]) -> bool:
    """Whether `candidate` equals one of `stored`, comparing with every one of them."""
    found = False
    for known in stored:
        found |= hmac.compare_digest(candidate, known)
    return found


@dataclass(frozen=True)
class KeyRing:
    """The digests of the data keys and of the admin keys."""

    data: tuple[bytes, ...]
    admin: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The keys the settings name (SettingsError when a key file cannot be read or a key is too short)."""
        data = read_keys(settings.api_keys, settings.api_keys_file, "API_KEYS")
        admin = read_keys(settings.admin_api_keys, settings.admin_api_keys_file, "ADMIN_API_KEYS")
        return cls(tuple(digest(key) for key in data), tuple(digest(key) for key in admin))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (else every route is open)."""
        return bool(self.data or self.admin)

    def grant(self, key: str) -> Access | None:
        """What `key` may call: ADMIN, DATA, or None for an unknown key."""
        candidate = digest(key)
        admin, data = matches(candidate, self.admin), matches(candidate, self.data)
        if admin:
            return Access.ADMIN
        return Access.DATA if data else None


def presented_key(scope: Scope) -> str | None:
    """The key in `Authorization: Bearer <key>`, else in `X-API-Key`, else None."""
    bearer = header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.partition(b" ")
            if scheme.lower() == b"bearer" and rest.strip():
                bearer = rest.strip().decode("latin-1")
        elif name == b"x-api-key" and value.strip():
            header = value.strip().decode("latin-1")
    return bearer or header


def required(path: str, metrics_need_key: bool) -> Access | None:
    """The scope a path needs, or None when it is open."""
    if path in OPEN_PATHS or path.startswith(DOCS_PREFIX):
        return None
    if path.startswith(ADMIN_PREFIX):
        return Access.ADMIN
    if path in METRICS_PATHS:
        return Access.DATA if metrics_need_key else None
    return Access.DATA


@dataclass(frozen=True)
class Refusal:
    """Why a request may not go on: its status, the client's message and the counted reason."""

    status: int
    detail: str
    reason: str


def refusal(keys: KeyRing, scope: Scope, metrics_need_key: bool) -> Refusal | None:
    """None when the request may go on; else a 401 (no valid key) or a 403 (no admin scope on an admin route)."""
    need = required(scope["path"], metrics_need_key)
    if need is None:
        return None
    key = presented_key(scope)
    granted = keys.grant(key) if key is not None else None
    if granted is not None and (need is Access.DATA or granted is Access.ADMIN):
        return None
    if granted is not None:
        return Refusal(403, "this API key has no admin scope", "not_admin")
    if key is None:
        return Refusal(401, "an API key is needed: Authorization: Bearer <key> or X-API-Key", "missing")
    return Refusal(401, "invalid API key", "invalid")


class KeyCheck:
    """A FastAPI dependency of every route (so the request is counted under its route): 401 without a valid key
    (with WWW-Authenticate), 403 without the admin scope on an admin route."""

    def __init__(self, keys: KeyRing, metrics_need_key: bool, telemetry: Telemetry) -> None:
        self.keys = keys
        self.metrics_need_key = metrics_need_key
        self.telemetry = telemetry

    async def __call__(self, request: Request) -> None:
        """Return when the request may go on; raise the 401/403 otherwise, counting it by its reason."""
        refused = refusal(self.keys, request.scope, self.metrics_need_key)
        if refused is None:
            return
        self.telemetry.count_auth_failure(refused.reason)
        raise HTTPException(
            refused.status, refused.detail, headers=dict([CHALLENGE]) if refused.status == 401 else None
        )
