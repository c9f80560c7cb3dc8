"""The one way the tests start a real server: `python -m service` (the guarded protocol and one-write answers always
on) on a free loopback port."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from support.paths import REPO_DIR

HOST: Final = "127.0.0.1"
READY_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 30.0


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A running server: its process, port and the files its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """One request on a new connection."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self.port}"

    def ready(self) -> bool:
        """Whether GET /ready answers 200."""
        try:
            return self.request("GET", "/ready").status == 200
        except OSError:
            return False

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def launch(work: Path, env: dict[str, str], argv: list[str] | None = None) -> Server:
    """Start `python -m service` (or `argv`) with `env` added, its output into files under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "HOST": HOST, "PORT": str(free_port()), **env}
    port = int(full_env["PORT"]) if full_env["PORT"].isdigit() else 0
    stdout, stderr = work / "stdout.log", work / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            argv or [sys.executable, "-m", "service"], cwd=REPO_DIR, env=full_env, stdout=out, stderr=err
        )
    return Server(process, port, stdout, stderr)


def wait_ready(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    """Block until /ready answers 200; fail with the server's output if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while not server.ready():
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the server was not ready within {timeout:.0f} s:\n{server.output()}")
        time.sleep(0.2)


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running(work: Path, model_dir: Path, **env: str) -> Iterator[Server]:
    """A ready server on the models in `model_dir` (settings as keyword arguments), stopped after the block."""
    server = launch(work, {"MODEL_DIR": str(model_dir), **env})
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)
