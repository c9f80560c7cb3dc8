"""`python -m service` fails fast with any number of workers: one line, no traceback, no respawn loop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pytest
from support.paths import REPO_DIR
from support.servers import HOST, launch, stop, wait_ready

from survival.checkpoint import CURRENT_LINK, SERVED_FILE

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

# Importing torch alone takes seconds on a busy machine; a respawn loop never ends at all.
EXIT_TIMEOUT_S: Final = 60.0


def ended(work: Path, env: dict[str, str], argv: list[str] | None = None) -> tuple[int, str, float]:
    """Start the server, wait for it to end: (status, stderr, seconds)."""
    start = time.monotonic()
    server = launch(work, env, argv)
    try:
        server.process.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"still running after {EXIT_TIMEOUT_S:.0f} s (a respawn loop?):\n{server.output()}")
    return server.process.returncode, server.stderr.read_text(), time.monotonic() - start


def problem_lines(stderr: str) -> list[str]:
    """stderr without uvicorn's INFO lines."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("INFO:")]


def broken_models(model_dir: Path, tmp: Path) -> tuple[Path, Path]:
    """A copy of the models whose served batchnorm layers are truncated; (directory, the broken file)."""
    import shutil

    models = tmp / "models"
    shutil.copytree(model_dir, models, symlinks=True)
    weights = (models / CURRENT_LINK / "batchnorm" / SERVED_FILE).resolve()
    weights.write_bytes(weights.read_bytes()[:100])
    return models, weights


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bad_setting_ends_the_launcher_at_once_naming_the_variable(
    model_dir: Path, tmp_path: Path, workers: str
) -> None:
    env = {"MODEL_DIR": str(model_dir), "WEB_CONCURRENCY": workers, "MAX_BATCH_SIZE": "abc"}
    status, stderr, seconds = ended(tmp_path, env)
    assert status == 2, stderr
    assert "Traceback" not in stderr
    (line,) = problem_lines(stderr)
    assert line.startswith("error: bad setting MAX_BATCH_SIZE='abc': "), line
    assert "integer" in line
    assert seconds < 20, seconds


def test_every_bad_setting_is_named_on_the_one_line(model_dir: Path, tmp_path: Path) -> None:
    status, stderr, _ = ended(tmp_path, {"MODEL_DIR": str(model_dir), "PORT": "http", "WEB_CONCURRENCY": "many"})
    assert status == 2
    (line,) = problem_lines(stderr)
    assert "PORT='http'" in line
    assert "WEB_CONCURRENCY='many'" in line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bad_checkpoint_ends_the_launcher_naming_the_file(model_dir: Path, tmp_path: Path, workers: str) -> None:
    models, weights = broken_models(model_dir, tmp_path)
    status, stderr, _ = ended(tmp_path / "run", {"MODEL_DIR": str(models), "WEB_CONCURRENCY": workers})
    assert status == 1, stderr
    assert "Traceback" not in stderr
    (line,) = problem_lines(stderr)
    assert line.startswith("error: cannot load the models: "), line
    assert weights.name in line
    assert "batchnorm" in line


def test_plain_uvicorn_with_two_workers_stops_instead_of_respawning(model_dir: Path, tmp_path: Path) -> None:
    """The check inside each worker: uvicorn's supervisor sees a start-up failure and stops (never respawns)."""
    env = {"MODEL_DIR": str(broken_models(model_dir, tmp_path)[0])}
    argv = [sys.executable, "-m", "uvicorn", "service.main:app", "--workers", "2", "--port", "0"]
    _, stderr, _ = ended(tmp_path / "run", env, argv)
    assert "Traceback" not in stderr
    errors = [line for line in problem_lines(stderr) if line.startswith("error: ")]
    # Each of the two workers reports once; a respawned worker would add more lines (until the timeout).
    assert 1 <= len(errors) <= 2, stderr
    assert errors[0].startswith("error: cannot load the models: "), errors[0]
    assert "batchnorm" in errors[0]


def test_the_served_app_freezes_its_start_up_heap_and_a_test_app_does_not(model_dir: Path) -> None:
    """A server's full collections walk only what came after start-up (service/main.py says why)."""
    code = (
        "import gc\n"
        "from fastapi.testclient import TestClient\n"
        "from service.config import Settings\n"
        "from service.main import app, create_app\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/ready').status_code == 200\n"
        "    served = gc.get_freeze_count()\n"
        "gc.unfreeze()\n"
        f"with TestClient(create_app(Settings(model_dir={str(model_dir)!r}))):\n"
        "    print(served, gc.get_freeze_count())\n"
    )
    env = {"MODEL_DIR": str(model_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_DIR)
    assert result.returncode == 0, result.stderr
    served, tested = (int(v) for v in result.stdout.split()[-2:])
    assert served > 10_000  # the app, its libraries and both models
    assert tested == 0


def test_the_start_up_line_points_to_the_dashboard_the_docs_and_prometheus(model_dir: Path, tmp_path: Path) -> None:
    server = launch(tmp_path, {"MODEL_DIR": str(model_dir)})
    try:
        wait_ready(server)
        base = f"http://{HOST}:{server.port}"
        line = next(row for row in server.stderr.read_text().splitlines() if row.startswith("service: the dashboard"))
        for path in ("/metrics", "/docs", "/metrics/prometheus"):
            assert f"{base}{path}" in line
            assert server.request("GET", path).status == 200, path
    finally:
        stop(server)
