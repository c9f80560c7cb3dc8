"""What the benchmark scripts share: a free loopback port, quick checkpoints, and a uvicorn server to measure."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

BENCH_DIR: Final[Path] = Path(__file__).resolve().parent
REPO_ROOT: Final[Path] = BENCH_DIR.parent
HOST: Final[str] = "127.0.0.1"
READY_TIMEOUT_S: Final[float] = 60.0


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def models_or_quick_pair(models: Path | None, work: Path) -> Path:
    """`models` if given, else a pair trained for 5 epochs into `work` (a benchmark needs real checkpoints, not good
    ones); resolved, because the server runs from another directory."""
    if models is not None:
        return models.resolve()
    out = work / "models"
    print(f"training a quick pair (5 epochs) into {out} ...", flush=True)
    cmd = [sys.executable, "-m", "training", "--epochs", "5", "--out", str(out), "--quiet"]
    subprocess.run(cmd, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    return out.resolve()


def ready(port: int) -> bool:
    """Whether GET /ready answers 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


# What a failed start shows of the server's log.
LOG_TAIL_CHARS: Final[int] = 4000


@contextmanager
def started(log_path: Path, settings: dict[str, str], args: tuple[str, ...] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m service ARGS` with `settings` (PORT among them) on top of the environment until the block
    ends (SIGTERM; a block that killed it already is fine); its output goes to `log_path`. Yields the process once
    /ready answers; a failure in the block prints the end of the log."""
    port = int(settings["PORT"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(BENCH_DIR), str(REPO_ROOT))), "HOST": HOST, **settings}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", *args], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S:.0f} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield proc
    except Exception:
        status = "running" if proc.poll() is None else f"exited with status {proc.returncode}"
        print(f"--- the server ({status}), the end of its log ---", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:], file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serving(app: str, model_dir: Path, log_path: Path, access_log: bool = True) -> Iterator[tuple[int, int]]:
    """Run `python -m service --app APP` (one worker, the shipped settings; APP from bench/ or the repo) until the
    block ends; its access log and other output go to `log_path`. Yields (port, pid) when ready."""
    port = free_port()
    settings = {
        "MODEL_DIR": str(model_dir),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "ACCESS_LOG": "1" if access_log else "0",
    }
    with started(log_path, settings, ("--app", app)) as proc:
        yield port, proc.pid
