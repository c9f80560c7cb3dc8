"""Hot swap in a real uvicorn process: new runs saved and promoted under load, a bad run, several workers."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from support.runs import copy_models, current_id, get_json, payload_of, request
from support.servers import HOST, running

from service.config import Settings
from service.main import create_app
from survival.checkpoint import CURRENT_LINK, METADATA_FILE, RUNS_DIR, SERVED_FILE
from survival.runs import point_current, promote, save_run
from survival.variants import VARIANTS

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

# Run ids sort by time; these come after any run the session fixture made.
RUN_B: Final = "20990101T000000000000Z-bbbbbb"
RUN_C: Final = "20990102T000000000000Z-cccccc"
RUN_BAD: Final = "20990103T000000000000Z-badbad"
POLL_S: Final = 0.2
SWAP_TIMEOUT_S: Final = 15.0
CLIENTS: Final = 6
BODY: Final = json.dumps({"pclass": 3, "fare": 7.25, "age": 22}).encode()


@dataclass(frozen=True)
class Answer:
    """One /predict answer under load: when it was sent, its status and the run/version of each model."""

    sent: float
    status: int
    models: dict[str, dict[str, str]]


class Load:
    """CLIENTS threads sending single-passenger POST /predict on keep-alive connections until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def _client(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("POST", "/predict", body=BODY, headers={"content-type": "application/json"})
                response = conn.getresponse()
                body = response.read()
            except OSError as exc:  # a dropped connection is a failed request
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                continue
            models = json.loads(body)["models"] if response.status == 200 else {}
            self.answers.append(Answer(sent, response.status, models))
        conn.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def versions(models: Path, run_id: str) -> dict[str, dict[str, str]]:
    """The `models` part of a /predict answer that run `run_id` gives."""
    out: dict[str, dict[str, str]] = {}
    for name in VARIANTS:
        meta = json.loads((models / RUNS_DIR / run_id / name / METADATA_FILE).read_text())
        out[name] = {"version": meta["weights_sha256"][:12], "run_id": run_id}
    return out


def wait_serving(port: int, run_id: str) -> float:
    """Wait until GET /runs says `run_id` is served; returns the monotonic time it first did."""
    deadline = time.monotonic() + SWAP_TIMEOUT_S
    while get_json(port, "/runs")["serving"]["run_id"] != run_id:
        assert time.monotonic() < deadline, f"run {run_id} was not served within {SWAP_TIMEOUT_S} s"
        time.sleep(0.02)
    return time.monotonic()


def prometheus_value(port: int, sample: str) -> float | None:
    """The value of one Prometheus sample line (name with labels), or None when absent."""
    text = request(port, "GET", "/metrics/prometheus")[1].decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def models(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's models."""
    return copy_models(model_dir, tmp_path / "models")


@pytest.fixture
def server(models: Path, tmp_path: Path) -> Iterator[int]:
    """A real server polling `current` every POLL_S seconds: its port."""
    with running(tmp_path / "server", models, RELOAD_POLL_S=str(POLL_S)) as served:
        yield served.port


def test_runs_saved_and_promoted_under_load_are_swapped_in_without_a_failed_or_mixed_answer(
    models: Path, server: int
) -> None:
    run_a = current_id(models)
    payloads = {run_id: payload_of(models, run_id, shift=shift) for run_id, shift in ((RUN_B, 0.1), (RUN_C, 0.2))}
    with Load(server) as load:
        time.sleep(0.5)
        save_run(models, RUN_B, payloads[RUN_B])
        wait_serving(server, RUN_B)
        time.sleep(0.5)
        save_run(models, RUN_C, payloads[RUN_C])
        wait_serving(server, RUN_C)
        time.sleep(0.5)
        promote(models, RUN_B)  # roll back
        last_flip_served = wait_serving(server, RUN_B)
        time.sleep(0.5)
    assert load.errors == []
    assert len(load.answers) > 50
    assert {a.status for a in load.answers} == {200}
    expected = {run_id: versions(models, run_id) for run_id in (run_a, RUN_B, RUN_C)}
    seen = set()
    for answer in load.answers:
        run_id = answer.models["batchnorm"]["run_id"]
        # One run per answer: both models' run ids and versions are exactly those of one run.
        assert answer.models == expected[run_id]
        seen.add(run_id)
    assert seen == {run_a, RUN_B, RUN_C}
    after = [a.models["batchnorm"]["run_id"] for a in load.answers if a.sent > last_flip_served]
    assert after
    assert set(after) == {RUN_B}
    assert prometheus_value(server, 'model_reloads_total{result="success"}') == 3.0
    for name in VARIANTS:
        info = f'model_info{{model="{name}",run_id="{RUN_B}",version="{expected[RUN_B][name]["version"]}"}}'
        assert prometheus_value(server, info) == 1.0
        stale = f'model_info{{model="{name}",run_id="{RUN_C}",version="{expected[RUN_C][name]["version"]}"}}'
        assert prometheus_value(server, stale) == 0.0
    report = get_json(server, "/runs")
    assert report["current"] == RUN_B
    assert report["last_reload"]["ok"] is True
    assert report["last_reload"]["run_id"] == RUN_B
    assert [r["run_id"] for r in report["runs"]] == [run_a, RUN_B, RUN_C]
    assert [r["run_id"] for r in report["runs"] if r["serving"]] == [RUN_B]
    assert [r["run_id"] for r in report["runs"] if r["current"]] == [RUN_B]


def plant_bad_run(models: Path, staging: Path) -> None:
    """A complete run RUN_BAD (saved elsewhere, copied in) with its batchnorm served file cut; `current` on it."""
    save_run(staging, RUN_BAD, payload_of(staging, RUN_BAD, shift=0.3))
    bad = models / RUNS_DIR / RUN_BAD
    shutil.copytree(staging / RUNS_DIR / RUN_BAD, bad)
    served = bad / "batchnorm" / SERVED_FILE
    served.write_bytes(served.read_bytes()[:100])
    point_current(models, RUN_BAD)


def test_a_bad_run_flipped_in_under_load_keeps_the_old_run_ready_and_is_counted_once(
    models: Path, server: int, tmp_path: Path
) -> None:
    run_a = current_id(models)
    staging = copy_models(models, tmp_path / "staging")
    with Load(server) as load:
        time.sleep(0.5)
        plant_bad_run(models, staging)
        deadline = time.monotonic() + SWAP_TIMEOUT_S
        while (get_json(server, "/runs")["last_reload"] or {}).get("ok") is not False:
            assert time.monotonic() < deadline, "the bad run was never tried"
            time.sleep(0.02)
        assert request(server, "GET", "/ready")[0] == 200
        time.sleep(10 * POLL_S)  # several more polls: a failed run is not retried while `current` stays
    assert load.errors == []
    assert {a.status for a in load.answers} == {200}
    assert {a.models["batchnorm"]["run_id"] for a in load.answers} == {run_a}
    assert prometheus_value(server, 'model_reloads_total{result="failure"}') == 1.0
    report = get_json(server, "/runs")
    assert report["serving"]["run_id"] == run_a
    assert report["current"] == RUN_BAD
    last = report["last_reload"]
    assert last["ok"] is False
    assert last["run_id"] == RUN_BAD
    assert f"{RUN_BAD}/batchnorm/{SERVED_FILE}: sha256" in last["error"]
    # /runs lists what is on disk (from the metadata); promoting it would be refused with the same error.
    assert [r["run_id"] for r in report["runs"]] == [run_a, RUN_BAD]
    # A good run flipped in afterwards is served again.
    save_run(models, RUN_C, payload_of(models, RUN_C, shift=0.2))
    wait_serving(server, RUN_C)
    assert prometheus_value(server, 'model_reloads_total{result="success"}') == 1.0


def test_current_pointing_nowhere_keeps_the_old_run(models: Path, server: int) -> None:
    run_a = current_id(models)
    (models / CURRENT_LINK).unlink()
    (models / CURRENT_LINK).symlink_to(Path(RUNS_DIR) / "no-such-run")
    deadline = time.monotonic() + SWAP_TIMEOUT_S
    while get_json(server, "/runs")["last_reload"] is None:
        assert time.monotonic() < deadline, "the dangling link was never noticed"
        time.sleep(0.02)
    report = get_json(server, "/runs")
    assert report["serving"]["run_id"] == run_a
    assert report["current"] is None
    assert report["last_reload"]["ok"] is False
    assert "no current run" in report["last_reload"]["error"]
    assert request(server, "GET", "/ready")[0] == 200
    assert request(server, "POST", "/predict", BODY)[0] == 200


def test_two_workers_each_swap_within_two_poll_intervals(models: Path, tmp_path: Path) -> None:
    poll_s = 1.0
    with running(tmp_path / "server", models, RELOAD_POLL_S=str(poll_s), WEB_CONCURRENCY="2") as server:
        save_run(models, RUN_B, payload_of(models, RUN_B, shift=0.1))
        # Two poll intervals, plus one second for loading the run on a busy machine.
        time.sleep(2 * poll_s + 1.0)
        answers: list[Any] = []
        lock = threading.Lock()

        def client() -> None:
            for _ in range(12):  # a new connection each time, so both workers take some
                answer = server.request("GET", "/runs")
                with lock:
                    answers.append((answer.status, json.loads(answer.body)["serving"]))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert {status for status, _ in answers} == {200}
    assert {serving["run_id"] for _, serving in answers} == {RUN_B}
    # Each worker reports when it started serving: two distinct values, so both workers answered.
    assert len({serving["since"] for _, serving in answers}) == 2


def test_admin_reload_swaps_through_the_reloader_and_refuses_a_bad_run(models: Path, tmp_path: Path) -> None:
    key = "k" * 40
    settings = Settings(model_dir=models, reload_poll_s=0, admin_api_keys=SecretStr(key))
    headers = {"Authorization": f"Bearer {key}"}
    run_a = current_id(models)
    with TestClient(create_app(settings)) as client:
        unchanged = client.post("/admin/reload", headers=headers)
        assert unchanged.status_code == 200, unchanged.text
        assert unchanged.json() == {"previous_run_id": run_a, "run_id": run_a, "changed": False}
        save_run(models, RUN_B, payload_of(models, RUN_B, shift=0.1))
        swapped = client.post("/admin/reload", headers=headers)
        assert swapped.json() == {"previous_run_id": run_a, "run_id": RUN_B, "changed": True}
        assert client.get("/runs", headers=headers).json()["serving"]["run_id"] == RUN_B
        plant_bad_run(models, copy_models(models, tmp_path / "staging"))
        refused = client.post("/admin/reload", headers=headers)
        assert refused.status_code == 409
        assert f"{RUN_BAD}/batchnorm/{SERVED_FILE}: sha256" in refused.json()["detail"]
        assert client.get("/runs", headers=headers).json()["serving"]["run_id"] == RUN_B
        assert client.get("/ready").status_code == 200
