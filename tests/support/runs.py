"""What the hot-swap, runs and served-form tests share: requests, run payloads."""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path
from typing import Any, Final

import torch

from support.servers import HOST
from survival.checkpoint import CURRENT_LINK
from survival.runs import VariantPayload
from survival.torch_checkpoint import load_pair
from survival.variants import VariantName
from training.fold import variant_payload

READY_TIMEOUT_S: Final = 60.0
# The metadata fields save_run fills in from the files it writes.
GENERATED_FIELDS: Final = {"tensors", "weights_sha256", "served_tensors", "served_sha256", "artifacts"}
Payload = dict[VariantName, VariantPayload]


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a new connection: (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(port: int, path: str) -> Any:
    """GET a JSON route that must answer 200."""
    status, body = request(port, "GET", path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def ready(port: int) -> bool:
    """Whether GET /ready answers 200."""
    try:
        return request(port, "GET", "/ready")[0] == 200
    except OSError:
        return False


def copy_models(model_dir: Path, dest: Path) -> Path:
    """A private copy of a model directory (the `current` symlink kept as a link)."""
    shutil.copytree(model_dir, dest, symlinks=True)
    return dest


def current_id(model_dir: Path) -> str:
    """The run id `current` points at."""
    return (model_dir / CURRENT_LINK).resolve().name


def payload_of(model_dir: Path, run_id: str, shift: float = 0.0) -> Payload:
    """The current run's models (every float tensor shifted by `shift`) and metadata, relabelled as `run_id`."""
    payload: Payload = {}
    for name, ckpt in load_pair(model_dir).items():
        with torch.no_grad():
            for tensor in ckpt.model.state_dict().values():
                if tensor.is_floating_point():
                    tensor += shift
        meta = ckpt.metadata.model_dump(exclude=GENERATED_FIELDS)
        payload[name] = variant_payload(ckpt.model, {**meta, "run_id": run_id})
    return payload
