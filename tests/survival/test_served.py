"""The served form: folded float64 layers equal the eval-mode torch model; the service process runs without torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
import pytest
import torch
from support.paths import REPO_DIR, SHIPPED_CSV_PATH, need
from support.runs import request
from support.servers import running

from service.pair import ServedPair
from survival.features import preprocess
from survival.served import forward, load_served_current
from survival.torch_checkpoint import load_pair
from training.data import load_csv
from training.fold import fold_layers

# Libraries the service must never load: their directories in a process's memory map give them away.
HEAVY_LIBRARIES: Final = ("torch", "pandas", "sklearn", "scipy")


def test_served_form_equals_the_eval_mode_torch_model_on_all_891_passengers(model_dir: Path) -> None:
    pair = load_pair(model_dir)
    _, served = load_served_current(model_dir)
    registry = ServedPair.load(model_dir)
    raw = load_csv(SHIPPED_CSV_PATH).raw
    assert raw.shape == (891, 3)
    for name, ckpt in pair.items():
        assert not ckpt.model.training
        features = preprocess(raw, ckpt.metadata.preprocessing)
        reference = copy.deepcopy(ckpt.model).double()  # the same checkpoint, evaluated in float64
        with torch.inference_mode():
            expected = torch.sigmoid(reference(torch.as_tensor(features))).numpy()
        got = forward(served[name].layers, features)[:, 0]
        assert got.shape == (891,)
        assert np.abs(got - expected).max() <= 1e-9
        # What /predict computes: both models as one side-by-side network, from raw rows.
        together = registry.predict(raw, ("batchnorm", "plain"))[name]
        assert np.abs(together - expected).max() <= 1e-9
    # Folding removed the BatchNorm layers: the batchnorm variant is served as three affine layers.
    assert len(served["batchnorm"].layers) == len(served["plain"].layers) == 3


def test_folding_a_model_in_train_mode_is_refused(model_dir: Path) -> None:
    model = copy.deepcopy(load_pair(model_dir)["batchnorm"].model).train()
    with pytest.raises(ValueError, match=r"needs a model in eval\(\) mode"):
        fold_layers(model)


def mapped_heavy_libraries(pid: int) -> set[str]:
    """Which of HEAVY_LIBRARIES have files mapped into process `pid` (a C extension or shared library)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {lib for lib in HEAVY_LIBRARIES if f"/site-packages/{lib}/" in maps}


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """A real `python -m service` process serving the session's checkpoints: (port, pid)."""
    need(Path("/proc/self/maps").is_file(), "the import audit reads /proc/PID/maps (Linux only)")
    with running(tmp_path_factory.mktemp("served"), model_dir) as served:
        yield served.port, served.process.pid


@pytest.mark.system
def test_the_service_process_never_loads_torch_pandas_sklearn_or_scipy(server: tuple[int, int]) -> None:
    port, pid = server
    # Exercise every route family first, so a lazy import anywhere would have happened.
    status, body = request(port, "POST", "/predict", json.dumps({"pclass": 3, "fare": 7.25, "age": 22}).encode())
    assert status == 200, body
    # A full monitoring report (every drift test runs from 100 passengers) and a V2 inference.
    rows = [{"pclass": 1 + i % 3, "fare": 5.0 + i, "age": 1.0 + i % 70} for i in range(150)]
    assert request(port, "POST", "/predict", json.dumps({"passengers": rows}).encode())[0] == 200
    assert json.loads(request(port, "GET", "/monitoring")[1])["drift"] is not None
    tensor = {"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [3, 7.25, 22]}
    assert request(port, "POST", "/v2/models/plain/infer", json.dumps({"inputs": [tensor]}).encode())[0] == 200
    for path in ("/models", "/metrics", "/metrics/prometheus", "/runs", "/docs", "/openapi.json"):
        assert request(port, "GET", path)[0] == 200, path
    assert mapped_heavy_libraries(pid) == set()


@pytest.mark.system
def test_the_memory_map_audit_sees_torch_when_it_is_loaded() -> None:
    # The contrast that makes the audit above meaningful: a process that imports them is caught.
    code = "import torch, pandas, sklearn, sys; print('loaded', flush=True); sys.stdin.read()"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_DIR
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "loaded"
        assert mapped_heavy_libraries(process.pid) == set(HEAVY_LIBRARIES)
    finally:
        process.communicate(input="", timeout=30)
