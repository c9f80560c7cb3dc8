"""The static files (/static, /docs/static): cacheable, and few large answers at once to any one client.

A browser fetches the dashboard's and the docs' assets once and then revalidates them (ETag, If-None-Match: a
304); a client that asks for the 1.7 MB Swagger bundle on thousands of connections and never reads would hold a
connection slot and a buffered answer per request. The send deadline and the output budget of the server
(service/server/guard.py) bound how long and how much; this bounds how many at once per client address.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

# An answer over this size does not leave in one write (the transport's high-water mark): it holds its connection.
LARGE_BYTES: Final[int] = 64 * 1024
# The assets change only with the package; a browser revalidates them after this (a 304 when unchanged).
CACHE_CONTROL: Final[str] = "public, max-age=3600"
RETRY_AFTER_S: Final[str] = "1"


class BoundedStaticFiles(StaticFiles):
    """StaticFiles with cacheable answers and at most `max_large_per_client` large ones sent at once per address."""

    def __init__(self, *, directory: Path, max_large_per_client: int, sending: dict[str, int] | None = None) -> None:
        super().__init__(directory=directory)
        self.max_large = max_large_per_client
        # Large answers being sent, by client address: shared by every mount given the same dict.
        self.sending: dict[str, int] = {} if sending is None else sending

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        """Starlette's file answer (or its 304), marked cacheable."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = CACHE_CONTROL
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a file; a 429 with Retry-After when this client is already being sent its share of large ones."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if not self.config_checked:
            await self.check_config()
            self.config_checked = True
        response = await self.get_response(self.get_path(scope), scope)
        stat_result = response.stat_result if isinstance(response, FileResponse) else None
        if stat_result is None or stat_result.st_size <= LARGE_BYTES:
            await response(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else ""
        sending = self.sending.get(address, 0)
        if sending >= self.max_large:
            detail = f"{sending} large files are already being sent to this address; retry later"
            refusal = JSONResponse({"detail": detail, "errors": []}, 429, headers={"retry-after": RETRY_AFTER_S})
            await refusal(scope, receive, send)
            return
        self.sending[address] = sending + 1
        try:
            await response(scope, receive, send)
        finally:
            left = self.sending[address] - 1
            if left:
                self.sending[address] = left
            else:
                del self.sending[address]
