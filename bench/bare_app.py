"""The floor of the stack for bench/bench_footprint.py: a FastAPI app with nothing but GET /ready (bench only)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/ready")
async def ready() -> dict[str, str]:
    """Always ready: the process's cost is the libraries'."""
    return {"status": "ready"}
