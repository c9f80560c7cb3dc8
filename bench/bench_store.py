"""The prediction store's figures: what recording costs /predict, feedback and comparison times, the writer under
load, and what a kill -9 loses.

Usage:
    .venv/bin/python bench/bench_store.py [--models DIR] [--rounds 4] [--duration 8] [--warmup 2] [--sets 5]
                                          [--predictions 1000000] [--labelled 100000] [--calls 20]
                                          [--load-seconds 60] [--kill-trials 5] [--kill-rate 200]
                                          [--kill-after 4] [--parts 12345] [--postgres] [--quick] [--check]

Every server is the shipped one, `python -m service` (one worker, access log on and written to a file, every
store setting its default: STORE_FLUSH_INTERVAL_S 0.5) on 127.0.0.1 at a free port, recording into an SQLite
file in a temporary directory on this machine's disk (WAL, synchronous=FULL, as shipped). Load: Debian's `wrk`
(one thread) with the single passenger `{"pclass": 3, "fare": 7.25, "age": 22}` at concurrency 16.

1. /predict throughput with the store on and with STORE_URL=none, all servers up, loaded in alternating rounds
   (on, off; then off, on; ...) so that drift in the machine's speed hits both alike. Then, on the store's side:
   its queue depth, drops and writes (GET /metrics/prometheus: store_queue_depth, store_dropped_total,
   store_written_total) and the rows in the table against the predictions wrk saw answered.
2. POST /feedback of 10,000 outcomes in one request, JSON and CSV (a PredictionId and a Survived column): each
   set is a fresh 10,000-passenger /predict batch with an X-Request-ID chosen here (so its ids are known), written
   to the store before the clock starts; the time is the request end to end. Median of --sets fresh sets per
   format; also the same JSON sent again (every outcome already recorded).
3. GET /comparison on a store of --predictions predictions of which --labelled carry an outcome: the tables are
   filled directly (executemany into the schema service.store.store.prepare builds, then a WAL checkpoint), the
   server started on them, one call to warm up, then --calls sequential calls timed end to end. Checks that the
   answer counts every prediction and every label.
4. The writer under --load-seconds of wrk on /predict, the store on: store_queue_depth, drops and writes sampled
   every second, throughput, and the rows in the table against what was written.
5. kill -9: a client sends single passengers at a steady --kill-rate (each with an X-Request-ID chosen here);
   after a few seconds the server gets SIGKILL. Counts the acknowledged predictions (a 200 received) missing from
   the store, and how long before the kill the first of them was acknowledged; one flush interval's worth of
   traffic is the bound the issue states. --kill-trials servers, each on a fresh store, killed after --kill-after
   seconds plus a random fraction of a flush interval.

With --postgres (and PostgreSQL's initdb and pg_ctl installed) parts 1 and 3 also run on a private PostgreSQL
server (tests/support/postgres.py: a cluster in a temporary directory on a free loopback port, fsync on); its
filled tables are ANALYZEd, as autovacuum would have done. --quick runs every part at a smoke-test size (a
second or two per load run, a 20,000-row store). Without --models a quick pair is trained first (5 epochs, into a
temp dir).

Targets (issue 21): store on >= 90 % of off; POST /feedback of 10,000 outcomes < 1 s; GET /comparison p50 < 250 ms
(1,000,000 predictions, 100,000 labelled); a kill -9 loses at most one flush interval of traffic; no drops. --check
exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import sqlalchemy as sa
from bench_service import WRK_SCRIPT, Load, batch_body, run_wrk, verdict
from server import HOST, REPO_ROOT, free_port, models_or_quick_pair, started

from service.config import Settings
from service.store.database import make_engine, store_url
from service.store.records import PREDICTION_COLUMNS
from service.store.store import COMPARISON_MAX_AGE_S, prepare

SINGLE: Final[bytes] = b'{"pclass":3,"fare":7.25,"age":22}'
CONCURRENCY: Final[int] = 16
FLUSH_INTERVAL_S: Final[float] = 0.5  # the shipped STORE_FLUSH_INTERVAL_S, which every server here runs with
FEEDBACK_SIZE: Final[int] = 10_000
TARGET_ON_VS_OFF: Final[float] = 0.90
TARGET_FEEDBACK_S: Final[float] = 1.0
TARGET_COMPARISON_MS: Final[float] = 250.0
DRAIN_TIMEOUT_S: Final[float] = 60.0
OFF: Final[str] = "store off"
FILL_RUN_ID: Final[str] = "bench-fill"
OUTCOME_COLUMNS: Final[tuple[str, ...]] = (
    "request_id",
    "row_index",
    "survived",
    "labelled_at",
    "predicted_at",
    "p_batchnorm",
    "p_plain",
    "answered",
    "run_id",
)


# --- a server, its requests and its metrics ------------------------------------------------------------------------


@dataclass
class Service:
    """A running `python -m service`: its process, port and log."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request on a fresh connection: (status, body)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def metrics(self) -> dict[str, float]:
        """GET /metrics/prometheus, each metric's samples summed over their labels (store_dropped_total's reasons)."""
        status, body = self.call("GET", "/metrics/prometheus")
        if status != 200:
            raise RuntimeError(f"GET /metrics/prometheus answered {status}: {body[:300]!r}")
        totals: dict[str, float] = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            name = sample.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
        return totals

    def store_counts(self) -> tuple[int, int, int]:
        """(store_queue_depth, store_dropped_total, store_written_total)."""
        m = self.metrics()
        return int(m.get("store_queue_depth", 0)), int(m.get("store_dropped_total", 0)), int(m["store_written_total"])

    def drain(self) -> tuple[int, int, int]:
        """Wait until the writer has written or dropped everything (depth 0 and the counts still for two flush
        intervals); the last counts."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        last = self.store_counts()
        while time.monotonic() < deadline:
            time.sleep(2 * FLUSH_INTERVAL_S)
            now = self.store_counts()
            if now == last and now[0] == 0:
                return now
            last = now
        raise RuntimeError(f"the writer did not drain within {DRAIN_TIMEOUT_S:.0f} s: {last}")

    def log(self) -> str:
        """What the server wrote so far."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def service(model_dir: Path, work: Path, name: str, url: str) -> Iterator[Service]:
    """`python -m service` (one worker, shipped settings) with STORE_URL=`url` until the block ends; it is sent
    SIGTERM then (a block that killed it already is fine)."""
    port = free_port()
    settings = {"MODEL_DIR": str(model_dir), "PORT": str(port), "WEB_CONCURRENCY": "1", "STORE_URL": url}
    log_path = work / f"{name}.log"
    with started(log_path, settings) as proc:
        yield Service(proc, port, log_path)


def check_predict(server: Service, name: str) -> None:
    """Refuse to time a server that does not answer the benchmark's passenger with both models."""
    status, body = server.call("POST", "/predict", SINGLE, {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"{name}: POST /predict answered {status}: {body[:300]!r}")
    answer = json.loads(body)
    if set(answer["predictions"][0]) != {"id", "batchnorm", "plain"}:
        raise RuntimeError(f"{name}: POST /predict did not answer an id and both models: {answer}")


# --- the stores ----------------------------------------------------------------------------------------------------


@dataclass
class Backend:
    """Where a store lives: a name for the tables and a way to make a fresh, empty store's STORE_URL."""

    name: str
    fresh: Callable[[str], str]  # a label -> the STORE_URL of a new, empty store


def sqlite_backend(work: Path) -> Backend:
    """SQLite files in `work` (absolute paths: sqlite:////...)."""
    return Backend("SQLite", lambda label: f"sqlite:///{work / f'{label}.db'}")


def engine_of(url: str) -> sa.Engine:
    """An engine on a store, set up as the service sets one up."""
    parsed = store_url(url)
    assert parsed is not None
    return make_engine(parsed, 10.0)


def count_rows(url: str, table: str = "predictions") -> int:
    """Rows in one of the store's tables."""
    engine = engine_of(url)
    try:
        with engine.connect() as connection:
            rows: int = connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    finally:
        engine.dispose()
    return rows


def stored_request_ids(url: str) -> set[str]:
    """The request ids of every stored prediction."""
    engine = engine_of(url)
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.exec_driver_sql("SELECT request_id FROM predictions")}
    finally:
        engine.dispose()


# --- 1. throughput, store on and off -------------------------------------------------------------------------------


@dataclass
class Runs:
    """One server's timed load runs, and every request wrk saw answered (warm-ups included)."""

    timed: list[Load] = field(default_factory=list)
    answered: int = 0
    errors: int = 0

    @property
    def rps(self) -> float:
        """Requests per second over the timed runs."""
        return sum(r.requests for r in self.timed) / sum(r.seconds for r in self.timed)


def wrk_script(work: Path) -> Path:
    """wrk's script POSTing the single passenger."""
    script = work / "predict.lua"
    script.write_text(WRK_SCRIPT.replace("{body}", SINGLE.decode()))
    return script


@dataclass(frozen=True)
class Written:
    """What a store-on server recorded after its load: answered by wrk (and the probes), rows, counters."""

    answered: int
    rows: int
    written: int
    dropped: int
    depth: int

    @property
    def complete(self) -> bool:
        """Every answered prediction is in the table, nothing was dropped and the counter agrees with the table.
        (The table may hold a few more than wrk counted: requests in flight when a wrk run stopped.)"""
        return self.dropped == 0 and self.depth == 0 and self.rows == self.written and self.rows >= self.answered


def throughput(
    wrk: str, work: Path, model_dir: Path, backends: list[Backend], args: argparse.Namespace
) -> tuple[dict[str, Runs], dict[str, Written]]:
    """Part 1: the store-off server and one store-on server per backend, loaded in rotating order."""
    script = wrk_script(work)
    runs: dict[str, Runs] = {OFF: Runs()}
    urls: dict[str, str] = {}
    written: dict[str, Written] = {}
    with ExitStack() as stack:
        servers = {OFF: stack.enter_context(service(model_dir, work, "throughput-off", "none"))}
        for backend in backends:
            urls[backend.name] = backend.fresh("throughput")
            servers[backend.name] = stack.enter_context(
                service(model_dir, work, f"throughput-{backend.name}", urls[backend.name])
            )
            runs[backend.name] = Runs()
        for name, server in servers.items():
            check_predict(server, name)
            runs[name].answered += 1
        order = list(servers)
        header = f"{'round':>5}  {'server':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        print(header + "\n" + "-" * len(header), flush=True)
        for round_no in range(args.rounds):
            shift = round_no % len(order)
            for name in order[shift:] + order[:shift]:
                url = f"http://{HOST}:{servers[name].port}/predict"
                warm = run_wrk(wrk, script, url, CONCURRENCY, args.warmup)
                timed = run_wrk(wrk, script, url, CONCURRENCY, args.duration)
                runs[name].timed.append(timed)
                runs[name].answered += warm.requests + timed.requests
                runs[name].errors += warm.errors + timed.errors
                print(
                    f"{round_no + 1:>5}  {name:<14}{timed.rps:>9.0f}{timed.p50_ms:>9.2f}{timed.p99_ms:>9.2f}"
                    f"{timed.errors:>8}",
                    flush=True,
                )
        for backend in backends:
            depth, dropped, total = servers[backend.name].drain()
            rows = count_rows(urls[backend.name])
            written[backend.name] = Written(runs[backend.name].answered, rows, total, dropped, depth)
    return runs, written


# --- 2. POST /feedback ---------------------------------------------------------------------------------------------


def wait_written(server: Service, at_least: int) -> None:
    """Wait until store_written_total reaches `at_least`."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while server.store_counts()[2] < at_least:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {at_least} predictions written after {DRAIN_TIMEOUT_S:.0f} s")
        time.sleep(FLUSH_INTERVAL_S / 5)


def feedback_body(kind: str, prediction_ids: list[str], survived: list[int]) -> tuple[bytes, str]:
    """The body giving each prediction its outcome, and its content type."""
    if kind == "JSON":
        outcomes = [{"prediction_id": p, "survived": s} for p, s in zip(prediction_ids, survived, strict=True)]
        return json.dumps({"outcomes": outcomes}, separators=(",", ":")).encode(), "application/json"
    lines = ["PredictionId,Survived", *(f"{p},{s}" for p, s in zip(prediction_ids, survived, strict=True))]
    return ("\n".join(lines) + "\n").encode(), "text/csv"


def timed_feedback(server: Service, body: bytes, content_type: str, expect_labelled: int) -> float:
    """Seconds for one POST /feedback, end to end; checks that it recorded `expect_labelled` new outcomes (and
    that it was given FEEDBACK_SIZE, or as many as it labelled)."""
    start = time.perf_counter()
    status, answer = server.call("POST", "/feedback", body, {"Content-Type": content_type})
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"POST /feedback answered {status}: {answer[:500]!r}")
    counts = json.loads(answer)
    if counts["outcomes"] not in (FEEDBACK_SIZE, expect_labelled) or counts["labelled"] != expect_labelled:
        raise RuntimeError(f"POST /feedback answered {counts}, {expect_labelled} new outcomes were expected")
    return elapsed


def feedback(work: Path, model_dir: Path, backend: Backend, sets: int) -> dict[str, list[float]]:
    """Part 2: seconds per POST /feedback of 10,000 outcomes, per format (and the JSON sent again)."""
    rng = random.Random(21)
    batch = batch_body(FEEDBACK_SIZE)
    times: dict[str, list[float]] = {"JSON": [], "CSV": [], "JSON again": []}
    with service(model_dir, work, "feedback", backend.fresh("feedback")) as server:
        predicted = labelled = 0
        for set_no in range(sets):
            line = f"set {set_no + 1}:"
            for kind in ("JSON", "CSV"):
                request_id = f"fb-{set_no}-{kind.lower()}-{uuid.uuid4().hex[:12]}"
                headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
                status, answer = server.call("POST", "/predict", batch, headers)
                if status != 200 or json.loads(answer)["predictions"][-1]["id"] != f"{request_id}/{FEEDBACK_SIZE - 1}":
                    raise RuntimeError(f"the 10,000-passenger batch was answered {status}: {answer[:300]!r}")
                predicted += FEEDBACK_SIZE
                wait_written(server, predicted)  # the clock times the outcomes, not the writer's next flush
                ids = [f"{request_id}/{i}" for i in range(FEEDBACK_SIZE)]
                body, content_type = feedback_body(kind, ids, [rng.randint(0, 1) for _ in range(FEEDBACK_SIZE)])
                times[kind].append(timed_feedback(server, body, content_type, FEEDBACK_SIZE))
                line += (
                    f" {kind} {times[kind][-1] * 1e3:.0f} ms (store: {predicted:,} predictions, {labelled:,} labelled)"
                )
                labelled += FEEDBACK_SIZE
                if kind == "JSON":
                    times["JSON again"].append(timed_feedback(server, body, content_type, 0))
                    line += f", again {times['JSON again'][-1] * 1e3:.0f} ms;"
            print(line, flush=True)
    return times


# --- 3. GET /comparison on a big store -----------------------------------------------------------------------------


def fill_rows(predictions: int, labelled: int, seed: int = 21) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """`predictions` rows of the predictions table (one passenger per request, 32-hex request ids, 10 ms apart,
    ending now) and `labelled` rows of the outcomes table for predictions drawn at random: outcomes drawn from a
    true probability that each model estimates with its own noise."""
    rng = np.random.default_rng(seed)
    now = time.time()
    at = now - (predictions - np.arange(predictions)) * 0.01
    pclass = rng.integers(1, 4, predictions)
    fare = np.round(rng.uniform(0.0, 250.0, predictions), 4)
    age = np.round(rng.uniform(0.5, 80.0, predictions), 1)
    age_given = rng.random(predictions) >= 0.2
    truth = rng.beta(2.0, 2.5, predictions)
    p_bn = np.clip(truth + rng.normal(0.0, 0.10, predictions), 0.001, 0.999)
    p_plain = np.clip(truth + rng.normal(0.0, 0.13, predictions), 0.001, 0.999)
    ids = [f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, (predictions, 2)).tolist()]
    ages = [a if given else None for a, given in zip(age.tolist(), age_given.tolist(), strict=True)]
    filled_age = np.where(age_given, age, 28.0).tolist()
    rows = list(
        zip(
            ids,
            [0] * predictions,
            at.tolist(),
            pclass.tolist(),
            fare.tolist(),
            ages,
            fare.tolist(),
            filled_age,
            p_bn.tolist(),
            p_plain.tolist(),
            ["both"] * predictions,
            [FILL_RUN_ID] * predictions,
            [None] * predictions,
            strict=True,
        )
    )
    chosen = np.sort(rng.choice(predictions, size=labelled, replace=False))
    survived = (rng.random(predictions) < truth).astype(int)
    late = (at + 3600.0).tolist()  # the outcome comes an hour after the prediction
    outcomes = [
        (ids[i], 0, int(survived[i]), late[i], float(at[i]), float(p_bn[i]), float(p_plain[i]), "both", FILL_RUN_ID)
        for i in chosen.tolist()
    ]
    return rows, outcomes


def insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    """A plain INSERT of every column."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def fill(url: str, predictions: int, labelled: int) -> tuple[float, list[str]]:
    """Build the schema (service.store.store.prepare: Alembic) and fill it directly; seconds it took, and the ids
    of the unlabelled predictions (in a random order)."""
    start = time.perf_counter()
    prepare(Settings(store_url=url))
    rows, outcomes = fill_rows(predictions, labelled)
    run = (FILL_RUN_ID, "fill", "fill", rows[0][2])
    parsed = store_url(url)
    assert parsed is not None
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        db = sqlite3.connect(parsed.database)
        try:
            db.execute("PRAGMA synchronous=OFF")  # the fill only; the server opens it as shipped
            with db:
                db.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", run)
                db.executemany(insert_sql("predictions", PREDICTION_COLUMNS, "?"), rows)
                db.executemany(insert_sql("outcomes", OUTCOME_COLUMNS, "?"), outcomes)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as a long-running store would have
        finally:
            db.close()
    else:
        engine = engine_of(url)
        try:
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("INSERT INTO runs VALUES (%s, %s, %s, %s)", run)
                for table, columns, data in (
                    ("predictions", PREDICTION_COLUMNS, rows),
                    ("outcomes", OUTCOME_COLUMNS, outcomes),
                ):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in data:
                            copy.write_row(row)
                raw.commit()
            finally:
                raw.close()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE")  # what autovacuum does soon after a bulk load
        finally:
            engine.dispose()
    seconds = time.perf_counter() - start
    labelled_ids = {row[0] for row in outcomes}
    unlabelled = [f"{row[0]}/0" for row in rows if row[0] not in labelled_ids]
    random.Random(21).shuffle(unlabelled)
    return seconds, unlabelled


@dataclass(frozen=True)
class ComparisonTimes:
    """Milliseconds per GET /comparison that computed the report, per one its cache answered, and per POST
    /feedback of 10,000 outcomes on the same filled store."""

    computed_ms: list[float]
    cached_ms: list[float]
    feedback_ms: float
    fill_s: float


def get_comparison(conn: http.client.HTTPConnection) -> tuple[float, dict[str, Any]]:
    """One GET /comparison on a kept-alive connection: milliseconds, end to end, and the answer."""
    start = time.perf_counter()
    conn.request("GET", "/comparison")
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - start) * 1e3
    if response.status != 200:
        raise RuntimeError(f"GET /comparison answered {response.status}: {body[:500]!r}")
    answer: dict[str, Any] = json.loads(body)
    return elapsed, answer


def comparison(
    work: Path, model_dir: Path, backend: Backend, predictions: int, labelled: int, calls: int
) -> ComparisonTimes:
    """Part 3: fill a store, serve it, time GET /comparison; then 10,000 outcomes fed back into it."""
    url = backend.fresh("comparison")
    fill_s, unlabelled = fill(url, predictions, labelled)
    print(f"{backend.name}: filled {predictions:,} predictions, {labelled:,} labelled, in {fill_s:.1f} s", flush=True)
    computed: list[float] = []
    cached: list[float] = []
    with service(model_dir, work, f"comparison-{backend.name}", url) as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
        try:
            _, answer = get_comparison(conn)  # the warm-up; it also reads the store's pages in
            if (answer["n_predictions"], answer["n_labelled"]) != (predictions, labelled):
                raise RuntimeError(f"the comparison counted {answer['n_predictions']} and {answer['n_labelled']}")
            for _ in range(calls):
                # A worker computes the report at most once per COMPARISON_MAX_AGE_S; a call after that computes.
                time.sleep(COMPARISON_MAX_AGE_S + 0.05)
                computed.append(get_comparison(conn)[0])
                cached.append(get_comparison(conn)[0])
        finally:
            conn.close()
        size = min(FEEDBACK_SIZE, len(unlabelled))
        body, content_type = feedback_body("JSON", unlabelled[:size], [i % 2 for i in range(size)])
        feedback_s = timed_feedback(server, body, content_type, size)
    return ComparisonTimes(computed, cached, feedback_s * 1e3, fill_s)


# --- 4. the writer under load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriterLoad:
    """Part 4's figures."""

    load: Load
    depths: list[int]
    written: Written
    writes: int
    write_seconds: float

    @property
    def max_depth(self) -> int:
        """The largest sampled store_queue_depth."""
        return max(self.depths, default=0)


def writer_load(wrk: str, work: Path, model_dir: Path, backend: Backend, seconds: float) -> WriterLoad:
    """wrk on /predict for `seconds`, the store on, store_queue_depth sampled every second."""
    url = backend.fresh("writer")
    depths: list[int] = []
    stop = threading.Event()
    with service(model_dir, work, "writer", url) as server:
        check_predict(server, backend.name)

        def sample() -> None:
            tick = time.monotonic()
            while True:
                tick += 1.0  # a fixed clock: a slow scrape under load does not stretch the next wait
                if stop.wait(max(0.0, tick - time.monotonic())):
                    return
                depths.append(server.store_counts()[0])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            load = run_wrk(wrk, wrk_script(work), f"http://{HOST}:{server.port}/predict", CONCURRENCY, seconds)
        finally:
            stop.set()
            sampler.join()
        depth, dropped, total = server.drain()
        metrics = server.metrics()
        rows = count_rows(url)
    written = Written(load.requests + 1, rows, total, dropped, depth)
    writes = int(metrics.get("store_write_seconds_count", 0))
    return WriterLoad(load, depths, written, writes, metrics.get("store_write_seconds_sum", 0.0))


# --- 5. kill -9 ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillTrial:
    """One SIGKILL: acknowledged predictions, those missing from the store, and how long before the kill the
    first missing one was acknowledged."""

    acknowledged: int
    missing: int
    window_s: float


def steady_client(port: int, prefix: str, rate: float, acked: list[tuple[str, float]], stop: threading.Event) -> None:
    """Single passengers at `rate` per second on one kept-alive connection, each with its own X-Request-ID;
    (id, time of the 200) for every acknowledged one. Ends at `stop` or when the server goes away."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    start = time.monotonic()
    i = 0
    try:
        while not stop.is_set():
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            request_id = f"{prefix}-{i}"
            conn.request(
                "POST",
                "/predict",
                body=SINGLE,
                headers={"Content-Type": "application/json", "X-Request-ID": request_id},
            )
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                acked.append((request_id, time.monotonic()))
            i += 1
    except (OSError, http.client.HTTPException):
        pass  # the server was killed
    finally:
        conn.close()


def kill_trial(work: Path, model_dir: Path, backend: Backend, trial: int, rate: float, after_s: float) -> KillTrial:
    """Steady traffic for about `after_s` (a random fraction of a flush interval more), then SIGKILL."""
    url = backend.fresh(f"kill-{trial}")
    acked: list[tuple[str, float]] = []
    stop = threading.Event()
    with service(model_dir, work, f"kill-{trial}", url) as server:
        client = threading.Thread(
            target=steady_client, args=(server.port, f"kill{trial}", rate, acked, stop), daemon=True
        )
        client.start()
        time.sleep(after_s + random.uniform(0.0, FLUSH_INTERVAL_S))
        killed_at = time.monotonic()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        client.join(timeout=15)
    stored = stored_request_ids(url)
    missing = [at for request_id, at in acked if request_id not in stored]
    return KillTrial(len(acked), len(missing), killed_at - min(missing) if missing else 0.0)


# --- PostgreSQL ----------------------------------------------------------------------------------------------------


@contextmanager
def postgres_backend() -> Iterator[Backend | None]:
    """A private PostgreSQL server (tests/support/postgres.py) for the block, a fresh database per store; None
    (and a line saying why) when it cannot run here."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from support.postgres import PostgresError, find_binaries, find_owner, fresh_database, private_server

    binaries, owner = find_binaries(), find_owner()
    if binaries is None or owner is None:
        print("PostgreSQL: skipped (no initdb and pg_ctl, or no postgres OS user to run them as under root)")
        yield None
        return
    try:
        with private_server(binaries, owner) as server:
            print(f"PostgreSQL: a private server on {HOST}:{server.port} (fsync on)", flush=True)
            yield Backend("PostgreSQL", lambda _label: fresh_database(server))
    except PostgresError as exc:
        print(f"PostgreSQL: could not be started: {str(exc).splitlines()[0]}")
        yield None


# --- main ----------------------------------------------------------------------------------------------------------

Check = tuple[str, bool]  # a verdict's line and whether the target was met


@dataclass(frozen=True)
class Bench:
    """What every part needs: wrk, the work directory, the checkpoints, the stores, the options."""

    wrk: str
    work: Path
    model_dir: Path
    backends: list[Backend]
    args: argparse.Namespace

    @property
    def sqlite(self) -> Backend:
        """The default store."""
        return self.backends[0]


def part_throughput(bench: Bench) -> list[Check]:
    """1. /predict on vs off, and every answered prediction in the table."""
    args = bench.args
    print(f"\n1. /predict, store on vs STORE_URL=none: {args.rounds} rounds of {args.warmup:g} + {args.duration:g} s")
    runs, written = throughput(bench.wrk, bench.work, bench.model_dir, bench.backends, args)
    off = runs[OFF].rps
    checks: list[Check] = []
    for backend in bench.backends:
        on, w = runs[backend.name].rps, written[backend.name]
        checks.append(
            (
                f"/predict with the store on ({backend.name}): {on / off:.1%} of off ({on:,.0f} / {off:,.0f} "
                f"req/s; target >= {TARGET_ON_VS_OFF:.0%})",
                on / off >= TARGET_ON_VS_OFF,
            )
        )
        checks.append(
            (
                f"every answered prediction written ({backend.name}): {w.answered:,} answered, {w.rows:,} rows, "
                f"store_written_total {w.written:,}, store_dropped_total {w.dropped}, store_queue_depth "
                f"{w.depth} after the load",
                w.complete,
            )
        )
    errors = sum(r.errors for r in runs.values())
    checks.append((f"failed requests during the load runs of part 1: {errors}", errors == 0))
    return checks


def part_feedback(bench: Bench) -> list[Check]:
    """2. POST /feedback of 10,000 outcomes."""
    sets = bench.args.sets
    print(f"\n2. POST /feedback of {FEEDBACK_SIZE:,} outcomes, {sets} fresh set(s) per format (SQLite)")
    times = feedback(bench.work, bench.model_dir, bench.sqlite, sets)
    checks: list[Check] = []
    for kind, seconds in times.items():
        median = statistics.median(seconds)
        text = (
            f"POST /feedback, {FEEDBACK_SIZE:,} outcomes, {kind}: median {median * 1e3:.0f} ms (min "
            f"{min(seconds) * 1e3:.0f}, max {max(seconds) * 1e3:.0f}, n={len(seconds)}; target < "
            f"{TARGET_FEEDBACK_S:g} s)"
        )
        checks.append((text, median < TARGET_FEEDBACK_S))
    return checks


def part_comparison(bench: Bench) -> list[Check]:
    """3. GET /comparison on a filled store, per backend."""
    args = bench.args
    print(f"\n3. GET /comparison: {args.predictions:,} predictions, {args.labelled:,} labelled, {args.calls} calls")
    checks: list[Check] = []
    for backend in bench.backends:
        result = comparison(bench.work, bench.model_dir, backend, args.predictions, args.labelled, args.calls)
        size = f"{args.predictions:,} predictions, {args.labelled:,} labelled ({backend.name})"
        computed, cached = result.computed_ms, result.cached_ms
        p50 = statistics.median(computed)
        checks.append(
            (
                f"GET /comparison, {size}: p50 {p50:.1f} ms computing the report (min {min(computed):.1f}, max "
                f"{max(computed):.1f}, n={len(computed)}; target < {TARGET_COMPARISON_MS:g} ms); from the "
                f"worker's 1 s cache p50 {statistics.median(cached):.1f} ms",
                p50 < TARGET_COMPARISON_MS,
            )
        )
        checks.append(
            (
                f"POST /feedback, {FEEDBACK_SIZE:,} outcomes, JSON, into the store of {size}: "
                f"{result.feedback_ms:.0f} ms (n=1; target < {TARGET_FEEDBACK_S:g} s)",
                result.feedback_ms < TARGET_FEEDBACK_S * 1e3,
            )
        )
    return checks


def part_writer(bench: Bench) -> list[Check]:
    """4. The writer's queue, drops and writes under a long load."""
    seconds = bench.args.load_seconds
    print(f"\n4. the writer under {seconds:g} s of /predict load (SQLite)")
    wl = writer_load(bench.wrk, bench.work, bench.model_dir, bench.sqlite, seconds)
    mean_write_ms = wl.write_seconds / wl.writes * 1e3 if wl.writes else 0.0
    print(f"store_queue_depth each second ({len(wl.depths)} samples): {wl.depths}")
    text = (
        f"writer under {wl.load.seconds:.0f} s of load (SQLite): {wl.load.rps:,.0f} req/s, store_queue_depth "
        f"max {wl.max_depth:,} (sampled each second), {wl.written.dropped} dropped, {wl.written.written:,} "
        f"written, {wl.written.rows:,} rows; {wl.writes:,} writes, mean {mean_write_ms:.1f} ms, in a write "
        f"{wl.write_seconds / wl.load.seconds:.0%} of the time"
    )
    return [(text, wl.written.complete and wl.load.errors == 0)]


def part_kill(bench: Bench) -> list[Check]:
    """5. What a kill -9 loses."""
    args = bench.args
    print(f"\n5. kill -9 after steady traffic at {args.kill_rate:g} req/s (SQLite), {args.kill_trials} trial(s)")
    trials = []
    for trial in range(args.kill_trials):
        result = kill_trial(bench.work, bench.model_dir, bench.sqlite, trial, args.kill_rate, args.kill_after)
        trials.append(result)
        print(
            f"trial {trial + 1}: {result.acknowledged:,} acknowledged, {result.missing} missing from the "
            f"store (the first acknowledged {result.window_s * 1e3:.0f} ms before the kill)",
            flush=True,
        )
    worst = max(t.missing for t in trials)
    text = (
        f"kill -9 at {args.kill_rate:g} req/s (SQLite): at most {worst} acknowledged predictions lost "
        f"(mean {statistics.mean(t.missing for t in trials):.1f}, n={len(trials)}), the first acknowledged "
        f"at most {max(t.window_s for t in trials) * 1e3:.0f} ms before the kill; one flush interval "
        f"({FLUSH_INTERVAL_S:g} s) is {args.kill_rate * FLUSH_INTERVAL_S:.0f} predictions"
    )
    return [(text, all(t.window_s <= FLUSH_INTERVAL_S for t in trials))]


PARTS: Final[dict[str, Callable[[Bench], list[Check]]]] = {
    "1": part_throughput,
    "2": part_feedback,
    "3": part_comparison,
    "4": part_writer,
    "5": part_kill,
}


def main() -> int:
    """Run the parts asked for, print their figures and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="checkpoint directory (default: train a 5-epoch pair)")
    parser.add_argument("--parts", default="12345", help="which parts to run, e.g. 13 (default: 12345)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of part 1 (default: 4)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per timed run of part 1 (default: 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default: 2)")
    parser.add_argument("--sets", type=int, default=5, help="fresh 10,000-outcome sets per format (default: 5)")
    parser.add_argument("--predictions", type=int, default=1_000_000, help="stored predictions, part 3")
    parser.add_argument("--labelled", type=int, default=100_000, help="of which labelled, part 3")
    parser.add_argument("--calls", type=int, default=20, help="timed GET /comparison calls (default: 20)")
    parser.add_argument("--load-seconds", type=float, default=60.0, help="seconds of load, part 4 (default: 60)")
    parser.add_argument("--kill-trials", type=int, default=5, help="servers killed with SIGKILL (default: 5)")
    parser.add_argument("--kill-rate", type=float, default=200.0, help="requests/s before a kill (default: 200)")
    parser.add_argument("--kill-after", type=float, default=4.0, help="seconds of traffic before a kill (default: 4)")
    parser.add_argument("--postgres", action="store_true", help="parts 1 and 3 on a private PostgreSQL server too")
    parser.add_argument("--quick", action="store_true", help="every part at a smoke-test size")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup, args.sets = 2, 2.0, 1.0, 1
        args.predictions, args.labelled, args.calls = 20_000, 2_000, 5
        args.load_seconds, args.kill_trials, args.kill_after = 5.0, 1, 2.0
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk is not installed (Debian: apt-get install -y wrk)")
    if not 0 < args.labelled <= args.predictions:
        parser.error("--labelled must be between 1 and --predictions")
    if not args.parts or set(args.parts) - set(PARTS):
        parser.error(f"--parts: digits of {''.join(PARTS)}")

    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; wrk, 1 thread, concurrency {CONCURRENCY}; STORE_FLUSH_INTERVAL_S "
        f"{FLUSH_INTERVAL_S:g}",
        flush=True,
    )
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp, ExitStack() as stack:
        work = Path(tmp)
        backends = [sqlite_backend(work)]
        if args.postgres:
            postgres = stack.enter_context(postgres_backend())
            if postgres is not None:
                backends.append(postgres)
        bench = Bench(wrk, work, models_or_quick_pair(args.models, work), backends, args)
        for part, run in PARTS.items():
            if part in args.parts:
                checks += run(bench)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n")
    for text, ok in checks:
        print(f"{verdict(ok)}  {text}")
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
