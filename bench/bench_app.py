"""The benchmark's app: the served app plus `POST /_trivial`, the ceiling of this stack (bench only).

Served by bench/bench_service.py as `python -m service --app bench_app:app` (bench/ on PYTHONPATH); the
extra route exists only here, never in `service.main:app`.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request, Response

from service.config import Settings
from service.main import serving_app
from service.parsing import parse_body, read_body

TRIVIAL_PATH: Final[str] = "/_trivial"
CONSTANT: Final[bytes] = b'{"ok":true}'

app = serving_app()


@app.post(TRIVIAL_PATH, include_in_schema=False)
async def trivial(request: Request) -> Response:
    """Read and validate the body exactly as POST /predict does, then answer a constant."""
    # The app's settings without a dependency: a sync `def` dependency costs a thread-pool hop, not the stack's.
    settings: Settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    parse_body(body, request.headers.get("content-type"), settings.max_batch_size)
    return Response(CONSTANT, media_type="application/json")
