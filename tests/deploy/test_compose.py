"""`docker compose up` end to end: the real images and stack, on your own Docker engine or through the harness.

Two ways to bring the stack up (`choose_engine`):
- where ../shared/tools/docker-harness exists (this project's CI machine, which cannot reach Docker Hub), the
  harness builds the images on a local stand-in base image with CPU torch from the machine's local wheel,
  runs `up -d --wait` on a fresh volume and probes /ready (KEEP_UP=1 leaves the stack running);
- anywhere else, your own engine (`docker info` answers and `docker compose version` is Compose v2): the
  tests run `docker compose build` with the Dockerfile's own defaults (the digest-pinned base image, torch from
  PyTorch's CPU index: minutes and about 1 GB of downloads the first time), then `up -d --wait`.
Either way the tests check the running containers, then a second `up` on the same volume, then tear
everything down (`down -v`). The compose project is named smoke-<directory>, on a free host port, so it never
touches a stack you run yourself with `docker compose up`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.paths import REPO_DIR, need

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

HARNESS = REPO_DIR.parent / "shared" / "tools" / "docker-harness" / "compose-smoke.sh"
# compose-smoke.sh names the compose project smoke-<directory name, lower case, [^a-z0-9] -> '-'>.
PROJECT = "smoke-" + re.sub(r"[^a-z0-9]", "-", REPO_DIR.name.lower())
COMPOSE = ["docker", "compose", "--project-directory", str(REPO_DIR), "-p", PROJECT, "-f", "docker-compose.yml"]
OUTPUT_DIR = REPO_DIR / "test-output"
# A cold build installs torch and the pinned dependencies (minutes); a cached one takes seconds.
HARNESS_TIMEOUT_S = 1800
STUDY_TIMEOUT_S = 600
# The stack's study at a test's size: what is tested is that it runs, writes study.json and reaches the dashboard,
# not the figures (the plan's default design takes minutes; tests/training covers the study itself).
SMALL_STUDY = {"STUDY_SEEDS": "3", "STUDY_FOLDS": "2"}
# The poller checks `current` every second (RELOAD_POLL_S); a swap well within this is the target.
RETRAIN_SWAP_S = 10
PASSENGER = {"pclass": 3, "fare": 7.25, "age": 22}
# Where the image's STORE_URL puts the prediction store: the compose file mounts the `store` volume there.
STORE_DIR = "/data/store"
STAND_IN_BASE = "python:3.11-slim"


@dataclass
class Stack:
    """The running compose project and what was measured bringing it up."""

    base_url: str
    port: int
    timings: dict[str, float] = field(default_factory=dict)


def compose(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` on the harness's project (every `up` of it runs the small study)."""
    return subprocess.run(
        [*COMPOSE, *args],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **SMALL_STUDY, **(env or {})},
        check=False,
    )


def container(service: str) -> dict[str, Any]:
    """`docker inspect` of the service's (only) container."""
    ids = compose("ps", "-a", "-q", service).stdout.split()
    assert len(ids) == 1, f"expected one {service} container, found {ids}"
    out = subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, timeout=60, check=True)
    inspected: dict[str, Any] = json.loads(out.stdout)[0]
    return inspected


def container_state(service: str) -> dict[str, Any]:
    """`docker inspect`'s State of the service's (only) container."""
    state: dict[str, Any] = container(service)["State"]
    return state


def http(url: str, body: dict[str, Any] | None = None, request_id: str | None = None) -> tuple[int, Any]:
    """GET (or POST JSON, with this X-Request-ID) and return (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    if request_id is not None:
        request.add_header("X-Request-ID", request_id)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def free_port() -> int:
    """A TCP port free on the host now (8000 may be taken by a developer's `make run`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def succeeds(*command: str) -> bool:
    """The command exists and exits 0 within a minute."""
    if shutil.which(command[0]) is None:
        return False
    try:
        return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def choose_engine(harness: bool, engine: bool, compose_v2: bool, root: bool) -> tuple[str | None, str]:
    """("harness" | "own" | None, why): how to bring the stack up on this machine.

    The harness where it exists (it reuses a running engine, and as root starts one and installs Compose v2);
    elsewhere the user's own engine when it answers and has Compose v2; otherwise nothing, and the reason.
    """
    if harness and (engine or root):
        return "harness", f"the offline harness {HARNESS}"
    if engine and compose_v2:
        return "own", "this machine's Docker engine and Compose v2"
    if harness:
        return None, f"no Docker engine answers (`docker info`) and, not being root, {HARNESS} cannot start one"
    if engine:
        return None, "`docker compose version` fails: the tests need Docker Compose v2 (the `docker compose` plugin)"
    return None, "no Docker engine answers (`docker info`); start Docker, or install it, to run the compose tests"


def up_through_harness(running: Stack) -> None:
    """Build and start the stack with ../shared/tools/docker-harness (stand-in base image, local torch wheel)."""
    # PYTHON_IMAGE: the harness's local stand-in for the Dockerfile's digest-pinned base (no Docker Hub there).
    env = {
        **os.environ,
        "KEEP_UP": "1",
        "API_PORT": str(running.port),
        "EXPECT": '"ready"',
        "PYTHON_IMAGE": STAND_IN_BASE,
        **SMALL_STUDY,
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(HARNESS), str(REPO_DIR), f"{running.base_url}/ready"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=HARNESS_TIMEOUT_S,
        env=env,
        check=False,
    )
    running.timings["harness_total_s"] = round(time.monotonic() - started, 1)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"compose-smoke.sh failed (exit {result.returncode}):\n{log[-6000:]}"
    for step in ("build", "up --wait"):
        match = re.search(rf"{re.escape(step)} ok \[([\d.]+)s\]", log)
        if match:
            running.timings[f"{step.replace(' --wait', '')}_s"] = float(match.group(1))


def up_on_own_engine(running: Stack) -> None:
    """Build the images with the Dockerfile's defaults and start the stack on this machine's engine."""
    env = {"API_PORT": str(running.port)}
    started = time.monotonic()
    build = compose("build", timeout=HARNESS_TIMEOUT_S, env=env)
    running.timings["build_s"] = round(time.monotonic() - started, 1)
    assert build.returncode == 0, f"docker compose build failed:\n{(build.stdout + build.stderr)[-6000:]}"
    started = time.monotonic()
    up = compose("up", "-d", "--wait", "--wait-timeout", "300", timeout=600, env=env)
    running.timings["up_s"] = round(time.monotonic() - started, 1)
    assert up.returncode == 0, f"docker compose up --wait failed:\n{(up.stdout + up.stderr)[-6000:]}"
    status, body = http(f"{running.base_url}/ready")
    assert (status, body.get("status")) == (200, "ready"), body


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The real compose stack, up and ready; `down -v` afterwards whatever happened."""
    mode, why = choose_engine(
        harness=HARNESS.is_file(),
        engine=succeeds("docker", "info"),
        compose_v2=succeeds("docker", "compose", "version"),
        root=os.geteuid() == 0,
    )
    need(mode is not None, why)
    port = free_port()
    running = Stack(base_url=f"http://127.0.0.1:{port}", port=port)
    try:
        if mode == "harness":
            up_through_harness(running)
        else:
            up_on_own_engine(running)
        yield running
    finally:
        down = compose("down", "-v", "--remove-orphans", "-t", "10", timeout=180, env={"API_PORT": str(port)})
        OUTPUT_DIR.mkdir(exist_ok=True)
        (OUTPUT_DIR / "compose-timings.json").write_text(json.dumps(running.timings, indent=2) + "\n")
        assert down.returncode == 0, f"docker compose down -v failed:\n{down.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("harness", "engine", "compose_v2", "root", "mode"),
    [
        (True, True, True, False, "harness"),  # the CI machine: the harness, reusing the running engine
        (True, False, False, True, "harness"),  # the harness may start an engine and install Compose v2
        (False, True, True, False, "own"),  # a user with Docker and no ../shared: their own engine
        (False, True, True, True, "own"),
        (False, True, False, False, None),  # an engine without Compose v2
        (False, False, True, True, None),  # no engine, no harness
        (True, False, True, False, None),  # the harness, but no engine and no right to start one
    ],
)
def test_the_engine_is_the_users_own_unless_the_harness_exists(
    harness: bool, engine: bool, compose_v2: bool, root: bool, mode: str | None
) -> None:
    chosen, why = choose_engine(harness=harness, engine=engine, compose_v2=compose_v2, root=root)
    assert chosen == mode
    assert why


def test_ready_answers_200_with_both_models(stack: Stack) -> None:
    status, body = http(f"{stack.base_url}/ready")
    assert status == 200
    assert body["status"] == "ready"
    assert sorted(body["models"]) == ["batchnorm", "plain"]


def test_predict_answers_both_models_with_probabilities(stack: Stack) -> None:
    status, body = http(f"{stack.base_url}/predict", PASSENGER)
    assert status == 200, body
    [row] = body["predictions"]
    assert row.pop("id") == f"{body['request_id']}/0"
    assert sorted(row) == ["batchnorm", "plain"]
    for answer in row.values():
        assert 0 <= answer["survival_probability"] <= 1
        assert answer["survived"] == (answer["survival_probability"] >= 0.5)


def test_metrics_lists_both_models_with_validation_accuracy(stack: Stack) -> None:
    status, body = http(f"{stack.base_url}/metrics")
    assert status == 200
    assert sorted(body["models"]) == ["batchnorm", "plain"]
    for model in body["models"].values():
        assert 0 <= model["validation"]["accuracy"] <= 1
        assert model["validation"]["n"] == 179


def test_api_runs_as_non_root(stack: Stack) -> None:
    uid = compose("exec", "-T", "api", "id", "-u")
    assert uid.returncode == 0, uid.stderr
    assert int(uid.stdout) != 0


def test_trainer_exited_0_after_training(stack: Stack) -> None:
    state = container_state("trainer")
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    logs = compose("logs", "--no-color", "trainer").stdout
    assert "wrote /models/runs/" in logs, logs


def test_study_completes_and_reaches_the_metrics(stack: Stack) -> None:
    started = time.monotonic()
    while (state := container_state("study"))["Status"] != "exited" and time.monotonic() < started + STUDY_TIMEOUT_S:
        time.sleep(2)
    stack.timings["study_wait_s"] = round(time.monotonic() - started, 1)
    logs = compose("logs", "--no-color", "--tail", "40", "study").stdout
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), logs
    status, body = http(f"{stack.base_url}/metrics")
    assert status == 200
    assert body.get("study"), "GET /metrics has no study although the study service finished"


def test_every_role_has_an_init_no_capabilities_no_privilege_gain_and_limits(stack: Stack) -> None:
    for service in ("trainer", "api", "study"):
        host = container(service)["HostConfig"]
        assert host["Init"] is True, service
        assert host["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["ReadonlyRootfs"] is True, service
        assert host["Memory"] > 0, service
        assert host["NanoCpus"] > 0, service
    # Docker's default CPU weight is 1024 (reported as 0 when not set).
    assert 0 < container("study")["HostConfig"]["CpuShares"] < (container("api")["HostConfig"]["CpuShares"] or 1024)


def test_the_api_writes_only_to_its_tmpfs_and_the_store_volume(stack: Stack) -> None:
    for path in ("/app/probe", "/opt/venv/probe", "/models/probe", "/data/probe"):
        denied = compose("exec", "-T", "api", "touch", path)
        assert denied.returncode != 0, path
        assert "Read-only file system" in denied.stderr, denied.stderr
    for directory in ("/tmp", STORE_DIR):
        allowed = compose("exec", "-T", "api", "sh", "-c", f"touch {directory}/probe && rm {directory}/probe")
        assert allowed.returncode == 0, allowed.stderr


def store_volume(stack: Stack) -> dict[str, Any]:
    """The api container's mount of the store directory."""
    mounts: list[dict[str, Any]] = container("api")["Mounts"]
    [mount] = [m for m in mounts if m["Destination"] == STORE_DIR]
    return mount


def test_predictions_and_their_outcomes_are_recorded_on_the_store_volume(stack: Stack) -> None:
    mount = store_volume(stack)
    assert (mount["Type"], mount["RW"]) == ("volume", True), mount
    assert mount["Name"].endswith("_store"), mount
    logs = compose("logs", "--no-color", "api").stdout
    assert f"service: prediction store at sqlite+pysqlite:///{STORE_DIR}/predictions.db" in logs, logs
    request_id = f"compose-{uuid.uuid4().hex}"
    status, body = http(f"{stack.base_url}/predict", PASSENGER, request_id=request_id)
    assert status == 200, body
    assert body["request_id"] == request_id
    [row] = body["predictions"]
    outcome = {"outcomes": [{"prediction_id": row["id"], "survived": 1}]}
    status, recorded = http(f"{stack.base_url}/feedback", outcome)
    assert (status, recorded["labelled"]) == (200, 1), recorded
    # The same outcome again counts once; an id the store never recorded is refused and named.
    status, again = http(f"{stack.base_url}/feedback", outcome)
    assert (status, again["labelled"], again["already_labelled"]) == (200, 0, 1), again
    status, unknown = http(f"{stack.base_url}/feedback", {"outcomes": [{"prediction_id": "never/0", "survived": 0}]})
    assert status == 422, unknown
    assert "never/0" in json.dumps(unknown)
    files = compose("exec", "-T", "api", "ls", STORE_DIR)
    assert "predictions.db" in files.stdout.split(), files.stdout + files.stderr
    # The comparison reads that store (computed at most once a second: it may lag the outcome by that much).
    deadline = time.monotonic() + 10
    while (report := http(f"{stack.base_url}/comparison"))[1].get("n_labelled", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert report[0] == 200, report
    assert report[1]["n_labelled"] >= 1, report


def test_the_published_port_is_bound_to_loopback_by_default(stack: Stack) -> None:
    bindings = container("api")["NetworkSettings"]["Ports"]["8000/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", str(stack.port))]


def test_the_healthcheck_is_a_cheap_probe_of_ready_that_can_fail(stack: Stack) -> None:
    api = container("api")
    test = api["Config"]["Healthcheck"]["Test"]
    assert test[:2] == ["CMD", "bash"], test  # one shell process per check, no Python interpreter
    assert "GET /ready " in test[-1]
    assert api["State"]["Health"]["Status"] == "healthy"
    assert compose("exec", "-T", "api", *test[1:]).returncode == 0
    # The same probe against a port where nothing listens fails: it checks something.
    assert compose("exec", "-T", "api", *test[1:-1], test[-1].replace("8000", "1")).returncode != 0


def test_the_api_image_has_no_torch_and_stays_under_350_mb(stack: Stack) -> None:
    sizes = {}
    for image in ("titanic-bn-api", "titanic-bn-trainer"):
        out = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", f"{image}:latest"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        sizes[image] = int(out.stdout)
        stack.timings[f"{image}_image_mb"] = round(sizes[image] / 1e6, 1)
    stats = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container("api")["Id"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if used := re.match(r"([\d.]+)MiB", stats.stdout.strip()):
        stack.timings["api_memory_mib"] = float(used.group(1))
    heavy = "('torch', 'pandas', 'sklearn', 'scipy')"
    missing = f"import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in {heavy}))"
    assert compose("exec", "-T", "api", "python", "-c", missing).returncode == 0
    assert sizes["titanic-bn-api"] <= 350e6  # Docker's MB, as `docker images` shows it


def test_a_retrain_reaches_the_running_api_without_a_restart(stack: Stack) -> None:
    """`RETRAIN=1 docker compose run --rm trainer` with the stack up: the API answers with the new run."""
    _, before = http(f"{stack.base_url}/predict", PASSENGER)
    old_runs = {model["run_id"] for model in before["models"].values()}
    api_started = container_state("api")["StartedAt"]
    env = {"API_PORT": str(stack.port), "RETRAIN": "1"}
    run = compose("run", "--rm", "trainer", timeout=600, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    flipped = time.monotonic()
    while time.monotonic() < flipped + RETRAIN_SWAP_S:
        status, after = http(f"{stack.base_url}/predict", PASSENGER)
        assert status == 200, after
        new_runs = {model["run_id"] for model in after["models"].values()}
        if new_runs.isdisjoint(old_runs):
            break
        time.sleep(0.2)
    stack.timings["retrain_swap_s"] = round(time.monotonic() - flipped, 1)
    assert new_runs.isdisjoint(old_runs), f"still serving {new_runs} {RETRAIN_SWAP_S} s after the retrain"
    assert len(new_runs) == 1
    assert container_state("api")["StartedAt"] == api_started  # the same container, never restarted


def answers(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A /predict answer's predictions without their ids (each request has its own)."""
    return [{model: row[model] for model in row if model != "id"} for row in body["predictions"]]


def test_second_up_reuses_the_checkpoints_and_keeps_the_store(stack: Stack) -> None:
    """`down` (SIGTERM: the API writes what it has queued) and `up` again: the same run, the same store."""
    request_id = f"compose-{uuid.uuid4().hex}"
    _, before = http(f"{stack.base_url}/predict", PASSENGER, request_id=request_id)
    volume = store_volume(stack)["Name"]
    env = {"API_PORT": str(stack.port)}
    down = compose("down", "-t", "10", timeout=180, env=env)  # keeps the volume
    assert down.returncode == 0, down.stderr
    started = time.monotonic()
    up = compose("up", "-d", "--wait", "--wait-timeout", "300", timeout=600, env=env)
    stack.timings["second_up_s"] = round(time.monotonic() - started, 1)
    assert up.returncode == 0, up.stdout + up.stderr
    logs = compose("logs", "--no-color", "trainer").stdout
    assert "not retraining" in logs, logs
    assert container_state("trainer")["ExitCode"] == 0
    status, after = http(f"{stack.base_url}/predict", PASSENGER)
    assert status == 200
    assert after["models"] == before["models"]  # same run id and weights
    assert answers(after) == answers(before)
    # The prediction answered just before `down` is in the store the new container opens.
    assert store_volume(stack)["Name"] == volume
    outcome = {"outcomes": [{"prediction_id": f"{request_id}/0", "survived": 0}]}
    status, recorded = http(f"{stack.base_url}/feedback", outcome)
    assert (status, recorded["labelled"]) == (200, 1), recorded
