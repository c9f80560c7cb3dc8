"""What the prediction store's system tests share: real `python -m service` processes on one database, their
predictions and outcomes over HTTP, the rows read back with SQLAlchemy, and bounded waits."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.pool import NullPool
from support.servers import Answer, Server, launch, stop, wait_ready

JSON: Final = {"content-type": "application/json"}
CSV: Final = {"content-type": "text/csv"}
# Every wait on the service or the database is bounded by this unless a test says otherwise.
WAIT_S: Final = 20.0
POLL_S: Final = 0.1

T = TypeVar("T")


def passengers(n: int, seed: int, *, pclass: int | None = None) -> list[dict[str, Any]]:
    """`n` valid passengers, varied (a fixed seed: the same every run); some without an age."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for _ in range(n):
        row: dict[str, Any] = {"pclass": pclass or rng.choice((1, 2, 3)), "fare": round(rng.uniform(5, 250), 2)}
        if rng.random() < 0.8:
            row["age"] = rng.randint(1, 75)
        rows.append(row)
    return rows


def predict(
    server: Server, request_id: str, rows: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST /predict of `rows` under `request_id` (a new connection); the JSON answer, which must be a 200."""
    body = json.dumps({"passengers": rows}).encode()
    answer = server.request("POST", "/predict", body, {**JSON, "x-request-id": request_id, **(headers or {})})
    assert answer.status == 200, (answer.status, answer.body[:500])
    parsed: dict[str, Any] = json.loads(answer.body)
    assert parsed["request_id"] == request_id
    assert [p["id"] for p in parsed["predictions"]] == [f"{request_id}/{i}" for i in range(len(rows))]
    return parsed


def post_json(server: Server, path: str, payload: object, headers: dict[str, str] | None = None) -> Answer:
    """A JSON POST on a new connection."""
    return server.request("POST", path, json.dumps(payload).encode(), {**JSON, **(headers or {})})


def get_json(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A GET's status and parsed JSON body (a new connection)."""
    answer = server.request("GET", path, headers={"accept": "application/json", **(headers or {})})
    return answer.status, json.loads(answer.body)


def engine_of(url: str) -> sa.Engine:
    """An engine on the store's database that keeps no connection between uses (the tests restart servers)."""
    return sa.create_engine(url, poolclass=NullPool)


def scalar(url: str, sql: str, **params: object) -> Any:
    """One value of one query on the store's database."""
    engine = engine_of(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar_one()
    finally:
        engine.dispose()


def rows_of(url: str, sql: str, **params: object) -> list[sa.Row[Any]]:
    """Every row of one query on the store's database."""
    engine = engine_of(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def stored_predictions(url: str) -> int:
    """The predictions the store holds."""
    return int(scalar(url, "SELECT count(*) FROM predictions"))


def wait_for(what: str, check: Callable[[], T | None], timeout: float = WAIT_S, *servers: Server) -> T:
    """Poll `check` until it returns something other than None or False; fail naming `what` (and the servers'
    output) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        for server in servers:
            assert server.process.poll() is None, f"the server exited while waiting for {what}:\n{told(server)}"
        if time.monotonic() > deadline:
            outputs = "\n".join(told(server)[-3000:] for server in servers)
            raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {result!r})\n{outputs}")
        time.sleep(POLL_S)


def wait_stored(url: str, expected: int, *servers: Server, timeout: float = WAIT_S) -> None:
    """Until the store holds exactly `expected` predictions (the writers flush every STORE_FLUSH_INTERVAL_S)."""
    wait_for(f"{expected} predictions in the store", lambda: stored_predictions(url) == expected, timeout, *servers)


def told(server: Server) -> str:
    """The server's output less its access log (one JSON object a line): what it said about itself."""
    return "\n".join(line for line in server.output().splitlines() if not line.startswith("{"))


@contextmanager
def replicas(work: Path, model_dir: Path, *envs: dict[str, str]) -> Iterator[list[Server]]:
    """One `python -m service` per env, all launched at the same moment, all ready; stopped (SIGTERM) after."""
    with ExitStack() as stack:
        servers = []
        for i, env in enumerate(envs):
            server = launch(work / f"replica{i}", {"MODEL_DIR": str(model_dir), **env})
            stack.callback(stop, server)
            servers.append(server)
        for server in servers:
            wait_ready(server)
        yield servers


def samples(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the server's /metrics/prometheus, keyed by (name, labels)."""
    answer = server.request("GET", "/metrics/prometheus")
    assert answer.status == 200, answer.body[:300]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        for sample in family.samples
    }


def metric(server: Server, name: str, **labels: str) -> float:
    """One sample's value on the server's /metrics/prometheus (0 when absent)."""
    return samples(server).get((name, frozenset(labels.items())), 0.0)


def metric_total(server: Server, name: str) -> float:
    """The sum of a metric's samples over every label value."""
    return sum(value for (sample, _), value in samples(server).items() if sample == name)


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (its workers, their children), deepest last."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found.append(child)
            found.extend(descendants(child))
    return found


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def kill_outright(server: Server) -> None:
    """`kill -9` of the whole service: every worker and the launcher SIGKILLed at once, so none can flush or
    respawn (a launcher killed alone would have its workers sent SIGTERM, which flushes)."""
    # Stopped first, so that the launcher cannot start a replacement worker between the kills.
    everyone = [server.process.pid, *descendants(server.process.pid)]
    for pid in everyone:
        os.kill(pid, signal.SIGSTOP)
    for pid in everyone:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=WAIT_S)
    assert server.process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + WAIT_S
    while any(alive(pid) for pid in everyone):
        assert time.monotonic() < deadline, "a process of the service outlived its SIGKILL"
        time.sleep(POLL_S)


def on_every_worker(
    send: Callable[[int], T],
    shared: Path,
    scratch: Path,
    *,
    workers: int = 2,
    least: int = 40,
    most: int = 2000,
    since: dict[str, float] | None = None,
) -> list[T]:
    """`send(i)` for i = 0, 1, ... from 16 threads on new connections, in rounds, until at least `least` were sent
    and each of the `workers` workers answered some (its predictions_total{model="plain"} in the multiprocess
    directory `shared` grew past `since`); the results in order. The kernel hands a connection to whichever worker
    accepts it first, so an idle service may give a few dozen to one worker alone."""
    before = since or {}
    results: list[T] = []
    with ThreadPoolExecutor(16) as pool:
        while True:
            start = len(results)
            results.extend(pool.map(send, range(start, start + max(16, least - start))))
            counts = worker_counts(shared, scratch, "predictions_total", model="plain")
            if len(counts) >= workers and all(n > before.get(worker, 0.0) for worker, n in counts.items()):
                return results
            assert len(results) < most, f"{len(results)} requests did not reach all {workers} workers: {counts}"


def worker_counts(directory: Path, scratch: Path, name: str, **labels: str) -> dict[str, float]:
    """One counter's value in each worker's own file of a PROMETHEUS_MULTIPROC_DIR, by file (one per worker pid)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    counts: dict[str, float] = {}
    for db in sorted(directory.glob("counter_*.db")):
        alone = scratch / f"{db.stem}-{time.monotonic_ns()}"
        alone.mkdir(parents=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        exposition = generate_latest(registry).decode()
        values = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
        }
        counts[db.stem] = values.get((name, frozenset(labels.items())), 0.0)
        shutil.rmtree(alone)
    return counts
