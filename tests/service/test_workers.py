"""Prometheus metrics tell one truth: values asserted in one process and summed over two real worker processes."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.app import app_client
from support.servers import Server, running

from survival.checkpoint import current_run_dir, read_metadata
from survival.variants import VARIANTS

SINGLE: Final = b'{"pclass": 3, "fare": 7.25, "age": 22}'
JSON: Final = {"content-type": "application/json"}
N_SINGLE: Final = 120
N_BATCHES: Final = 8
BATCH_ROWS: Final = 25
SCRAPES: Final = 5


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def batch(rows: int) -> bytes:
    """A batch of `rows` valid passengers."""
    return json.dumps(
        {"passengers": [{"pclass": 1 + i % 3, "fare": 10.0 + i, "age": 30} for i in range(rows)]}
    ).encode()


def checkpoint_accuracy(model_dir: Path) -> dict[str, float]:
    """Each variant's final-epoch validation accuracy, from its checkpoint."""
    run = current_run_dir(model_dir)
    return {name: read_metadata(run / name).metrics.accuracy for name in VARIANTS}


def test_one_process_counts_requests_and_rows(model_dir: Path) -> None:
    with app_client(model_dir) as client:
        for _ in range(7):
            assert client.post("/predict", content=SINGLE, headers=JSON).status_code == 200
        assert client.post("/predict?model=plain", content=batch(30), headers=JSON).status_code == 200
        assert client.post("/predict", content=b"{", headers=JSON).status_code == 400
        text = client.get("/metrics/prometheus").text
    assert value(text, "predictions_total", model="batchnorm") == 7
    assert value(text, "predictions_total", model="plain") == 7 + 30
    assert value(text, "http_requests_total", method="POST", route="/predict", status="200") == 8
    assert value(text, "http_requests_total", method="POST", route="/predict", status="400") == 1
    assert value(text, "http_request_duration_seconds_count", method="POST", route="/predict") == 9
    for name, accuracy in checkpoint_accuracy(model_dir).items():
        assert value(text, "model_validation_accuracy", model=name) == pytest.approx(accuracy, abs=1e-12)
    # Every stage of the 8 answered inferences is timed once; the malformed body never reached a stage's end.
    for stage in ("decode", "predict", "encode"):
        assert value(text, "inference_stage_seconds_count", protocol="predict", stage=stage) == 8
        assert value(text, "inference_stage_seconds_sum", protocol="predict", stage=stage) > 0


def test_v2_inference_is_timed_under_its_own_protocol(model_dir: Path) -> None:
    body = {"inputs": [{"name": "features", "shape": [2, 3], "datatype": "FP64", "data": [3, 7.25, 22, 1, 80, 40]}]}
    with app_client(model_dir) as client:
        for _ in range(3):
            assert client.post("/v2/models/plain/infer", json=body).status_code == 200
        assert client.post("/predict", content=SINGLE, headers=JSON).status_code == 200
        text = client.get("/metrics/prometheus").text
    for stage in ("decode", "predict", "encode"):
        assert value(text, "inference_stage_seconds_count", protocol="v2", stage=stage) == 3
        assert value(text, "inference_stage_seconds_count", protocol="predict", stage=stage) == 1
    assert value(text, "predictions_total", model="plain") == 2 * 3 + 1
    route = "/v2/models/{name}/infer"
    assert value(text, "http_requests_total", method="POST", route=route, status="200") == 3


def test_label_values_stay_bounded_whatever_the_client_sends(model_dir: Path) -> None:
    invented = ["FROBNICATE", "X-INVENTED", "BREW"]
    paths = ["/nowhere", "/predict/extra", "/models/batchnorm/more", "/a1b2c3"]
    with app_client(model_dir) as client:
        for method in invented:
            assert client.request(method, "/predict").status_code == 405
        for path in paths:
            assert client.get(path).status_code == 404
        text = client.get("/metrics/prometheus").text
    series = [labels for (name, labels) in samples(text) if name == "http_requests_total"]
    methods = {dict(labels)["method"] for labels in series}
    routes = {dict(labels)["route"] for labels in series}
    assert methods == {"GET", "other"}
    assert value(text, "http_requests_total", method="other", route="/predict", status="405") == len(invented)
    assert value(text, "http_requests_total", method="GET", route="unmatched", status="404") == len(paths)
    assert not routes & set(paths)


def per_worker_predictions(directory: Path, tmp: Path) -> dict[str, float]:
    """predictions_total{model="batchnorm"} of each worker, read from that worker's own counter file."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for db in sorted(directory.glob("counter_*.db")):
        alone = tmp / db.stem
        alone.mkdir()
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        counts[db.stem] = value(generate_latest(registry).decode(), "predictions_total", model="batchnorm")
    return counts


def wait_for_workers(directory: Path, workers: int, server: Server) -> None:
    """Until every worker has started (each writes its accuracy gauge at start-up)."""
    deadline = time.monotonic() + 120
    while len(list(directory.glob("gauge_livemostrecent_*.db"))) < workers:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.2)


@pytest.mark.system
def test_two_workers_every_scrape_reports_the_total(model_dir: Path, tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    with running(tmp_path / "server", model_dir, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(shared)) as server:
        wait_for_workers(shared, 2, server)
        bodies = [SINGLE] * N_SINGLE + [batch(BATCH_ROWS)] * N_BATCHES
        # New connections from 8 threads: the kernel hands them to both workers.
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda body: server.request("POST", "/predict", body, JSON).status, bodies))
        assert statuses == [200] * len(bodies)
        scrapes = [server.request("GET", "/metrics/prometheus").body.decode() for _ in range(SCRAPES)]
        per_worker = per_worker_predictions(shared, tmp_path)
    rows = N_SINGLE + N_BATCHES * BATCH_ROWS
    accuracy = checkpoint_accuracy(model_dir)
    for text in scrapes:
        assert value(text, "predictions_total", model="batchnorm") == rows
        assert value(text, "predictions_total", model="plain") == rows
        assert value(text, "http_requests_total", method="POST", route="/predict", status="200") == len(bodies)
        assert value(text, "http_request_duration_seconds_count", method="POST", route="/predict") == len(bodies)
        for stage in ("decode", "predict", "encode"):
            count = value(text, "inference_stage_seconds_count", protocol="predict", stage=stage)
            assert count == len(bodies), stage
        for name, expected in accuracy.items():
            assert value(text, "model_validation_accuracy", model=name) == pytest.approx(expected, abs=1e-12)
    # Both workers answered predictions, and their own counts add up to the total every scrape showed.
    assert len(per_worker) == 2, per_worker
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == rows


def test_static_files_are_counted_under_their_mount_not_unmatched(model_dir: Path) -> None:
    with app_client(model_dir) as client:
        assert client.get("/static/dashboard.js").status_code == 200
        assert client.head("/static/dashboard.css").status_code == 200
        assert client.get("/docs/static/swagger-ui.css").status_code == 200
        assert client.get("/static/no-such-file.js").status_code == 404
        text = client.get("/metrics/prometheus").text
    assert value(text, "http_requests_total", method="GET", route="/static", status="200") == 1
    assert value(text, "http_requests_total", method="HEAD", route="/static", status="200") == 1
    assert value(text, "http_requests_total", method="GET", route="/docs/static", status="200") == 1
    assert value(text, "http_requests_total", method="GET", route="/static", status="404") == 1
    assert value(text, "http_requests_total", method="GET", route="unmatched", status="200") == 0
