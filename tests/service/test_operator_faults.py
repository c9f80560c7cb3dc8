"""Careless-operator faults (issue 24): each degrades what it touches and says so; the service keeps answering.

Unreadable runs are reported by /runs (relative to MODEL_DIR, never a server path); a study.json that blocks
or is too big is reported by /metrics without stopping the worker; a full Prometheus multiprocess directory
costs metrics, never workers; a worker killed outright leaves no gauges behind in the scrape.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from support.paths import need
from support.runs import copy_models, payload_of
from support.servers import Server, running

from service.config import Settings
from service.main import create_app
from survival.checkpoint import CURRENT_LINK, METADATA_FILE, RUNS_DIR
from survival.runs import point_current, save_run
from survival.study import STUDY_FILE
from training.run import new_run_id

KEY: Final = "k" * 40
SINGLE: Final = b'{"pclass": 3, "fare": 7.25, "age": 22}'
JSON: Final = {"content-type": "application/json"}


def test_runs_names_what_it_cannot_read_and_never_a_server_path(model_dir: Path, tmp_path: Path) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    broken = models / RUNS_DIR / new_run_id(datetime.now(UTC))
    shutil.copytree((models / CURRENT_LINK).resolve(), broken)
    metadata = broken / "batchnorm" / METADATA_FILE
    metadata.unlink()
    metadata.mkdir()  # reading it fails with an OSError, as an unreadable file would
    settings = Settings(model_dir=models, reload_poll_s=0, admin_api_keys=SecretStr(KEY))
    headers = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app(settings)) as client:
        point_current(models, broken.name)
        assert client.post("/admin/reload", headers=headers).status_code == 409
        answer = client.get("/runs", headers=headers)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert f"{RUNS_DIR}/{broken.name}/batchnorm/{METADATA_FILE}: cannot read" in " ".join(report["problems"])
    assert report["last_reload"]["ok"] is False
    assert "MODEL_DIR/" in report["last_reload"]["error"], report["last_reload"]
    assert str(tmp_path) not in answer.text
    assert str(tmp_path.resolve()) not in answer.text


@pytest.mark.system
def test_a_study_json_that_blocks_or_is_too_big_is_reported_and_the_worker_keeps_answering(
    model_dir: Path, tmp_path: Path
) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    study = models / STUDY_FILE
    os.mkfifo(study)  # opening it for reading would wait for a writer forever
    with running(tmp_path / "server", models, FILE_READ_TIMEOUT_S="1", STUDY_MAX_BYTES="2048") as server:
        for _ in range(2):
            start = time.monotonic()
            answer = server.request("GET", "/metrics", headers={"accept": "application/json"})
            assert time.monotonic() - start < 5
            assert answer.status == 200, answer.body
            assert json.loads(answer.body)["study_problem"] == f"{STUDY_FILE} is not a regular file"
        assert server.request("GET", "/health").status == 200
        assert server.request("POST", "/predict", SINGLE, JSON).status == 200
        study.unlink()
        study.write_text(" " * 3000)
        answer = server.request("GET", "/metrics", headers={"accept": "application/json"})
        assert json.loads(answer.body)["study_problem"] == f"{STUDY_FILE} is 3000 bytes, over the limit of 2048"
        html = server.request("GET", "/metrics", headers={"accept": "text/html"})
        assert html.status == 200
        assert f"The study results were refused: {STUDY_FILE} is 3000 bytes".encode() in html.body
    # Logged once per distinct problem, not once per request.
    assert server.output().count(f"study results: {STUDY_FILE} is not a regular file") == 1


def workers(server: Server) -> set[int]:
    """The launcher's worker processes (not multiprocessing's resource tracker)."""
    pid = server.process.pid
    children = {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    return {child for child in children if b"resource_tracker" not in cmdline(child)}


def cmdline(pid: int) -> bytes:
    """A process's command line (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the block (skipped where mounting is not allowed)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    need(mounted.returncode == 0, f"cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): {mounted.stderr!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.system
def test_a_full_metrics_directory_degrades_the_metrics_and_no_worker_dies(model_dir: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "metrics", "160k") as directory:
        env = {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        with running(tmp_path / "server", model_dir, **env) as server:
            before = workers(server)
            for i in range(40):
                assert server.request("POST", "/predict", SINGLE, JSON).status == 200
                assert server.request("GET", f"/missing/{i}").status == 404
            scrape = server.request("GET", "/metrics/prometheus")
            time.sleep(1.0)  # a worker killed by SIGBUS would be replaced by now
            after = workers(server)
    assert scrape.status == 200
    assert b"metrics_values_not_shared" in scrape.body
    assert before == after, (before, after)
    assert "multiprocess directory is full" in server.output()


def served_runs(server: Server) -> set[str]:
    """The run ids model_info says are served (value 1 summed over live workers)."""
    text = server.request("GET", "/metrics/prometheus").body.decode()
    return {
        sample.labels["run_id"]
        for family in text_string_to_metric_families(text)
        if family.name == "model_info"
        for sample in family.samples
        if sample.value == 1
    }


@pytest.mark.system
def test_a_worker_killed_outright_leaves_no_gauges_behind(model_dir: Path, tmp_path: Path) -> None:
    models = copy_models(model_dir, tmp_path / "models")
    old_run = (models / CURRENT_LINK).resolve().name
    with running(tmp_path / "server", models, WEB_CONCURRENCY="2", RELOAD_POLL_S="0") as server:
        assert served_runs(server) == {old_run}
        new_run = new_run_id(datetime.now(UTC))
        save_run(models, new_run, payload_of(models, new_run, shift=0.1))  # no polling: the workers keep old_run
        for victim in sorted(workers(server)):
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while len(workers(server) - {victim}) < 2 or not server.ready():
                assert time.monotonic() < deadline, "the killed worker was not replaced"
                time.sleep(0.2)
        # Both workers were replaced and serve the new run; the dead ones served the old run until killed.
        assert served_runs(server) == {new_run}


@pytest.mark.system
def test_killing_the_launcher_outright_takes_its_workers_with_it(model_dir: Path, tmp_path: Path) -> None:
    with running(tmp_path / "server", model_dir, WEB_CONCURRENCY="2") as server:
        children = workers(server)
        assert len(children) == 2
        server.process.kill()
        server.process.wait()
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() and b"Z" not in stat_of(pid) for pid in children):
            assert time.monotonic() < deadline, "a worker outlived its launcher"
            time.sleep(0.2)


def stat_of(pid: int) -> bytes:
    """The state field of /proc/PID/stat (b"Z": a zombie, already dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return b"Z"
