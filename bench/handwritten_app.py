"""The baseline of bench/bench_dataplane.py: what a user would write instead of this project (bench only).

Twenty lines of FastAPI: a pydantic model, both torch models of the current run called inline, no access log,
no metrics. MODEL_DIR names the run directory's parent, as for the service.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel

from survival.features import preprocess
from survival.torch_checkpoint import load_pair

torch.set_num_threads(1)
PAIR = load_pair(Path(os.environ.get("MODEL_DIR", "models")))
app = FastAPI()


class Passenger(BaseModel):
    """One passenger."""

    pclass: int
    fare: float | None = None
    age: float | None = None


@app.post("/predict")
async def predict(p: Passenger) -> dict[str, dict[str, float | bool]]:
    """Both models' survival probability."""
    raw = [[p.pclass, p.fare if p.fare is not None else float("nan"), p.age if p.age is not None else float("nan")]]
    answer: dict[str, dict[str, float | bool]] = {}
    for name, checkpoint in PAIR.items():
        x = torch.as_tensor(preprocess(np.array(raw), checkpoint.metadata.preprocessing), dtype=torch.float32)
        with torch.inference_mode():
            prob = float(torch.sigmoid(checkpoint.model(x))[0])
        answer[name] = {"survival_probability": prob, "survived": prob >= 0.5}
    return answer
