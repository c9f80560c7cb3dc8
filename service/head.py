"""HEAD wherever GET works (RFC 9110 section 9.3.2): the GET answer's status and headers, without its body.

FastAPI registers a `@get` route for GET only, so HEAD would be a 405; this pure ASGI middleware runs the
GET instead and drops the body, so the headers (Content-Length included) are exactly the GET's.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set in the GET scope that answers a HEAD, so the metrics and the access log count the HEAD as a HEAD.
ANSWERS_HEAD: Final[str] = "service.answers_head"


class HeadAsGetMiddleware:
    """Answer HEAD as GET, minus the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything through; turn a HEAD into a GET whose body is not sent."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", ANSWERS_HEAD: True}, receive, send_without_body)
