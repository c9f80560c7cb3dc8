"""The floor of a Python HTTP stack for bench/bench_dataplane.py: a bare ASGI app that parses the JSON body and
answers a constant (bench only). Served by uvicorn with httptools, as the service is."""

from __future__ import annotations

import json
from typing import Any

CONSTANT = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(CONSTANT)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, parse it, answer a constant."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    json.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": CONSTANT})
