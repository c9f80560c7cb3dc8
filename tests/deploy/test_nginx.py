"""Three real API replicas behind nginx with the shipped deploy/nginx/nginx.conf: restarts lose no request.

Every replica is restarted in turn (SIGTERM, started again, ready) and one is killed with SIGKILL while a
bounded load of POST /predict runs through nginx; the clients must see 0 failed requests.
"""

from __future__ import annotations

import http.client
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import REPO_DIR, need

from service.config import Settings

sys.path.insert(0, str(REPO_DIR / "bench"))
from lb import PASSENGER, Load, Nginx, Replica, replicas_behind_nginx, rolling_restart
from server import HOST

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

REPLICAS = 3
CLIENT_THREADS = 8


@pytest.fixture(scope="module")
def cluster(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nginx, list[Replica]]]:
    """Three ready replicas of the API and nginx in front of them."""
    need(shutil.which("nginx") is not None, "nginx is not installed (Debian: apt-get install nginx)")
    with replicas_behind_nginx(REPLICAS, model_dir, tmp_path_factory.mktemp("lb")) as running:
        yield running


def post_predict(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """POST one passenger; (status, response headers with lower-case names)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("POST", "/predict", body=PASSENGER, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_requests_are_spread_over_every_replica(cluster: tuple[Nginx, list[Replica]]) -> None:
    nginx, replicas = cluster
    with Load(nginx.port, threads=4, max_requests=300) as load:
        load.join()
    assert load.result.failures == []
    assert load.result.ok == 300
    served_by = {line["upstream_addr"] for line in wait_for_log(nginx, 300)}
    assert served_by == {f"{HOST}:{r.port}" for r in replicas}


def test_restarts_and_a_kill_lose_no_request(cluster: tuple[Nginx, list[Replica]]) -> None:
    """Every SIGTERM restart and the SIGKILL lose nothing: a killed replica's unanswered requests are retried by
    nginx on another, and an answer it had written reached nginx whole (service/server/one_write.py)."""
    nginx, replicas = cluster
    before = len(nginx.access_log())
    with Load(nginx.port, threads=CLIENT_THREADS, max_requests=500_000, max_seconds=600) as load:
        restarts = rolling_restart(replicas)
    result = load.result
    print(f"{result.sent} requests, {len(result.failures)} failed, {result.rate:.0f}/s;", *restarts.steps, sep="\n  ")
    assert result.failures == []
    assert result.sent == result.ok
    assert result.ok > 1000
    assert [r.starts for r in replicas] == [2, 3, 2]  # each restarted once, the middle one killed and restarted too
    # Every restarted replica took traffic again after its restart (the last step's replica included).
    lines = wait_for_log(nginx, before + result.sent)[before:]
    last_fifth = {line["upstream_addr"] for line in lines[-len(lines) // 5 :] if "," not in str(line["upstream_addr"])}
    assert last_fifth == {f"{HOST}:{r.port}" for r in replicas}, nginx.error_log()


def test_the_request_id_sent_upstream_is_the_clients_or_a_generated_one(
    cluster: tuple[Nginx, list[Replica]],
) -> None:
    nginx, _ = cluster
    before = len(nginx.access_log())
    assert post_predict(nginx.port, {"X-Request-ID": "client-abc.123"})[0] == 200
    assert post_predict(nginx.port, {})[0] == 200
    assert post_predict(nginx.port, {"X-Request-ID": "bad id\twith spaces"})[0] == 200
    # The access log writes the variable that nginx sends to the replica as X-Request-ID.
    sent, generated, replaced = (str(line["request_id"]) for line in wait_for_log(nginx, before + 3)[before:])
    assert sent == "client-abc.123"
    assert re.fullmatch("[0-9a-f]{32}", generated)  # nginx's $request_id: 128 random bits in hex
    assert re.fullmatch("[0-9a-f]{32}", replaced)
    assert replaced != generated


def test_nginx_passes_a_body_the_service_accepts_and_refuses_one_over_its_limit(
    cluster: tuple[Nginx, list[Replica]],
) -> None:
    nginx, _ = cluster
    limit = Settings().max_body_bytes
    # At the limit, the replica answers (400: whitespace is no JSON), so nginx's limit is not below the service's.
    assert send_body(nginx.port, b" " * limit) == 400
    # One byte over, nginx refuses from the Content-Length alone, before the body crosses the hop.
    assert send_body(nginx.port, None, content_length=limit + 1) == 413


def send_body(port: int, body: bytes | None, content_length: int | None = None) -> int:
    """POST /predict with this body (or only its Content-Length header); the status."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body) if body is not None else content_length))
        conn.endheaders(body)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_for_log(nginx: Nginx, count: int) -> list[dict[str, object]]:
    """The access log once it holds `count` lines (nginx flushes its buffer within a second)."""
    deadline = time.monotonic() + 5
    while len(lines := nginx.access_log()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(lines) >= count, f"{len(lines)} access log lines, expected {count}"
    return lines
