"""Replicas of the API behind nginx on loopback: what tests/deploy/test_nginx.py and bench/bench_lb.py share.

nginx runs with the project's own deploy/nginx/nginx.conf, copied into a temporary prefix together with a
`listen.conf` (a free loopback port) and an `upstream-servers.conf` written from the shipped example's first
`server` line (its max_fails/fail_timeout kept), so the configuration under test is the one that ships.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from server import HOST, READY_TIMEOUT_S, REPO_ROOT, free_port, ready

NGINX_DIR: Final[Path] = REPO_ROOT / "deploy" / "nginx"
STOP_TIMEOUT_S: Final[float] = 20.0
REQUEST_TIMEOUT_S: Final[float] = 30.0
PASSENGER: Final[bytes] = b'{"pclass": 3, "fare": 7.25, "age": 22}'


def api_command() -> list[str]:
    """The API process as it ships (its settings, the port among them, are environment variables)."""
    return [sys.executable, "-m", "service"]


class Replica:
    """One API process on a fixed loopback port that can be stopped and started again on the same port."""

    def __init__(self, model_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.model_dir = model_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the process and return once GET /ready answers 200."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process."""
        env = {**os.environ, "MODEL_DIR": str(self.model_dir), "HOST": HOST, "PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(api_command(), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    def wait_ready(self) -> None:
        """Return once GET /ready answers 200; raise if the process exits or takes too long."""
        assert self.proc is not None, "not started"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica :{self.port} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica :{self.port} not ready in {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` and wait for the process to end; its exit status (negative: the signal that ended it)."""
        assert self.proc is not None, "not started"
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(
                f"replica :{self.port} did not stop within {STOP_TIMEOUT_S:.0f} s of {sig.name}"
            ) from None

    def close(self) -> None:
        """Kill the process if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the replica's output."""
        return self.log_path.read_text(errors="replace")[-chars:]


def upstream_lines(ports: list[int]) -> str:
    """upstream-servers.conf for these ports, with the parameters of the shipped example's first server line."""
    example = (NGINX_DIR / "upstream-servers.conf").read_text()
    match = re.search(r"^server\s+\S+(?P<params>[^;\n]*);", example, re.MULTILINE)
    assert match, "deploy/nginx/upstream-servers.conf has no `server ADDRESS ...;` line"
    return "".join(f"server {HOST}:{port}{match['params']};\n" for port in ports)


def unprivileged() -> tuple[int, int] | None:
    """(uid, gid) of `nobody` when this process is root (nginx then runs as that user), else None."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


class Nginx:
    """nginx with deploy/nginx/nginx.conf in a temporary prefix of its own, unprivileged, on a free loopback port."""

    def __init__(self, ports: list[int]) -> None:
        # Under /tmp rather than a test's private folder: as root, nginx runs as `nobody`, which must reach it.
        self.prefix = Path(tempfile.mkdtemp(prefix="lb-nginx-"))
        self.port = free_port()
        for sub in ("logs", "tmp"):
            (self.prefix / sub).mkdir()
        shutil.copy(NGINX_DIR / "nginx.conf", self.prefix / "nginx.conf")
        (self.prefix / "listen.conf").write_text(f"listen {HOST}:{self.port};\n")
        (self.prefix / "upstream-servers.conf").write_text(upstream_lines(ports))
        self.user = unprivileged()
        if self.user is not None:
            for path in (self.prefix, *self.prefix.rglob("*")):
                os.chown(path, *self.user)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start nginx in the foreground and return once it proxies GET /health."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        cmd = [nginx, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-e", "stderr"]
        cmd += ["-g", "daemon off; pid nginx.pid;"]
        user = {} if self.user is None else {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        with (self.prefix / "logs" / "stderr.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **user)  # type: ignore[call-overload]
        deadline = time.monotonic() + 10
        while get_status(self.port, "/health") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{self.error_log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), then a kill if it hangs; the prefix is removed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def error_log(self) -> str:
        """nginx's own messages (start-up and error log)."""
        logs = self.prefix / "logs"
        return "".join(
            p.read_text(errors="replace")[-3000:] for p in (logs / "stderr.log", logs / "error.log") if p.exists()
        )

    def access_log(self) -> list[dict[str, Any]]:
        """The access log's JSON lines (written within a second: `flush=1s`)."""
        path = self.prefix / "logs" / "access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def get_status(port: int, path: str) -> int:
    """The status of GET path, or 0 when nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


@contextmanager
def replicas_behind_nginx(count: int, model_dir: Path, work: Path) -> Iterator[tuple[Nginx, list[Replica]]]:
    """`count` ready replicas and nginx in front of them, all stopped when the block ends."""
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        replicas = [Replica(model_dir, work / f"replica-{i}.log") for i in range(count)]
        for replica in replicas:
            stack.callback(replica.close)
            replica.spawn()
        for replica in replicas:
            replica.wait_ready()
        nginx = Nginx([r.port for r in replicas])
        stack.callback(nginx.stop)
        nginx.start()
        yield nginx, replicas


@dataclass
class LoadResult:
    """What the clients saw."""

    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    failure_times: list[float] = field(default_factory=list)  # time.monotonic() of each failure
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0


class Load:
    """Threads each sending POST /predict over one kept-alive connection until stopped or bounded.

    A request counts as failed unless it is answered 200 with a body holding predictions; a connection error
    counts too (the thread then reconnects). Bounded by `max_requests` in all and `max_seconds`.
    """

    def __init__(self, port: int, *, threads: int = 8, max_requests: int = 200_000, max_seconds: float = 120) -> None:
        self.port = port
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.max_requests = max_requests
        self.deadline = 0.0
        self.max_seconds = max_seconds
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.result = LoadResult()
        self.started = 0.0

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self.deadline = self.started + self.max_seconds
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.join()

    def join(self) -> None:
        """Wait until the threads have sent what they may (or were stopped)."""
        for thread in self.threads:
            thread.join()
        self.result.seconds = time.monotonic() - self.started

    def _claim(self) -> bool:
        with self.lock:
            if self.stopping.is_set() or self.result.sent >= self.max_requests or time.monotonic() > self.deadline:
                return False
            self.result.sent += 1
            return True

    def _run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        while self._claim():
            problem = ""
            try:
                conn.request("POST", "/predict", body=PASSENGER, headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or b'"predictions"' not in body:
                    problem = f"HTTP {response.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
            with self.lock:
                if problem:
                    self.result.failures.append(problem)
                    self.result.failure_times.append(time.monotonic())
                else:
                    self.result.ok += 1
        conn.close()


@dataclass
class Restarts:
    """What a rolling restart did: one line per step, and when the SIGKILL step began (time.monotonic())."""

    steps: list[str]
    kill_started: float


def rolling_restart(replicas: list[Replica], *, pause_s: float = 1.0) -> Restarts:
    """Restart every replica in turn (SIGTERM, start, ready), then SIGKILL one and start it again.

    `pause_s` between steps lets nginx's fail_timeout expire, so that it has tried each restarted replica
    again before the next one goes down (as a rollout waits for readiness between pods).
    """
    steps = []
    kill_started = 0.0
    plan = [(replica, signal.SIGTERM) for replica in replicas] + [(replicas[len(replicas) // 2], signal.SIGKILL)]
    for replica, sig in plan:
        time.sleep(pause_s)
        started = time.monotonic()
        if sig == signal.SIGKILL:
            kill_started = started
        status = replica.stop(sig)
        replica.start()
        steps.append(f"{sig.name} :{replica.port} -> exit {status}, ready again in {time.monotonic() - started:.1f} s")
    time.sleep(pause_s)
    return Restarts(steps, kill_started)
