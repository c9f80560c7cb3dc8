"""The benchmark's app: the served app plus two routes that exist only here, never in `service.main:app`.

`POST /_trivial`, the ceiling of this stack, for bench/bench_service.py; `POST /_monitoring_ab`, monitoring
switched on and off many times a second under load, for bench/bench_monitoring.py. Served as
`python -m service --app bench_app:app` (bench/ on PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from fastapi import HTTPException, Query, Request, Response

from service.main import serving_app
from service.parsing import parse_body
from service.state import AppState, state_of

TRIVIAL_PATH: Final[str] = "/_trivial"
AB_PATH: Final[str] = "/_monitoring_ab"
CONSTANT: Final[bytes] = b'{"ok":true}'

app = serving_app()


@app.post(TRIVIAL_PATH, include_in_schema=False)
async def trivial(request: Request) -> Response:
    """Read and validate the body with the input rules POST /predict applies, then answer a constant."""
    settings = state_of(request.app).settings
    body = await request.body()
    parse_body(body, request.headers.get("content-type"), settings.max_batch_size)
    return Response(CONSTANT, media_type="application/json")


def served(state: AppState) -> float:
    """Passengers this worker has answered so far (its predictions_total of one model)."""
    state.telemetry.flush()  # one worker keeps its counts in process until the registry is read
    value = state.telemetry.registry.get_sample_value("predictions_total", {"model": "plain"})
    return value or 0.0


@app.post(AB_PATH, include_in_schema=False)
async def monitoring_ab(
    request: Request,
    seconds: float = Query(gt=0, le=600),
    block: float = Query(default=0.05, gt=0, le=10),
) -> dict[str, list[tuple[bool, float, float]]]:
    """For `seconds`, switch this worker's monitor off and on every `block` seconds; each block's (on, s, passengers).

    The rest of the process is the same in both modes (one heap, one layout, the same connections), and a block
    lasts a twentieth of a second, so the machine's speed, which drifts by tens of per cent over seconds on a
    shared host, is the same for an "on" block and the "off" block next to it.
    """
    state = state_of(request.app)
    monitor = state.lifecycle.monitor
    if monitor is None:
        raise HTTPException(409, "monitoring is off (MONITOR=0): nothing to switch")
    blocks: list[tuple[bool, float, float]] = []
    end = time.perf_counter() + seconds
    on, then, count = True, time.perf_counter(), served(state)
    try:
        while then < end:
            state.lifecycle.monitor = monitor if on else None
            await asyncio.sleep(block)
            now, total = time.perf_counter(), served(state)
            blocks.append((on, now - then, total - count))
            on, then, count = not on, now, total
    finally:
        state.lifecycle.monitor = monitor
    return {"blocks": blocks}
