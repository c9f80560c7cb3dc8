"""What the guarded protocol answers when it refuses a request itself, before or instead of the app."""

from __future__ import annotations

import json
from typing import Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE


class RefusedError(Exception):
    """Raised in a parser callback to stop parsing a request that breaks a limit (uvicorn then calls
    `send_400_response`, which answers the limit's own status instead)."""


# After refusing an upload still under way, its bytes are read and dropped for at most this long, or this many,
# before the connection is closed: a client sends its whole body before it reads, and a close with bytes unread
# resets the connection, which can lose the answer.
LINGER_S: Final[float] = 2.0
LINGER_BYTES: Final[int] = 8 * 1024 * 1024
# Seconds a client refused for load is told to wait (Retry-After).
RETRY_AFTER_S: Final[int] = 1


def plain_response(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 answer with the service's JSON error body that closes the connection."""
    body = json.dumps({"detail": detail, "errors": []}).encode()
    head = [STATUS_LINE[status], b"content-type: application/json\r\nx-content-type-options: nosniff\r\n"]
    if status == 503:
        head.append(b"retry-after: %d\r\n" % RETRY_AFTER_S)
    head += [b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n"]
    return b"".join(head) + body
