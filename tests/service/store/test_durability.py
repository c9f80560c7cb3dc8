"""The store keeps what it promised through crashes and outages, on the real service and the real databases:

- an outcome POST /feedback acknowledged (200) survives a `kill -9` of the whole service, and the restarted service
  finds it (SQLite and PostgreSQL);
- while PostgreSQL is down the service answers and stays ready, counts what it could not write, and writes again
  once the database is back;
- SIGTERM writes every prediction answered before it (only that flush can, with a long flush interval).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from store_servers import (
    kill_outright,
    metric,
    on_every_worker,
    passengers,
    post_json,
    predict,
    rows_of,
    stored_predictions,
    wait_for,
    wait_stored,
)
from support.servers import launch, running, stop, wait_ready

if TYPE_CHECKING:
    from support.postgres import PostgresServer

pytestmark = pytest.mark.system  # real servers and a real PostgreSQL

FAST_FLUSH: Final = {"STORE_FLUSH_INTERVAL_S": "0.2"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each kind: an SQLite file of the test's own, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store/predictions.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def outcomes_of(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An outcome for every prediction of the answers, alternating 1 and 0."""
    ids = [p["id"] for answer in answers for p in answer["predictions"]]
    return [{"prediction_id": pid, "survived": i % 2} for i, pid in enumerate(ids)]


def test_an_acknowledged_outcome_survives_kill_9_of_the_service(
    model_dir: Path, tmp_path: Path, store_url: str
) -> None:
    env = {"STORE_URL": store_url, "WEB_CONCURRENCY": "2", **FAST_FLUSH}
    server = launch(tmp_path / "first", {"MODEL_DIR": str(model_dir), **env})
    try:
        wait_ready(server)
        answers = [predict(server, f"kill9-{i}", passengers(4, seed=i)) for i in range(5)]
        wait_stored(store_url, 20, server)
        given = outcomes_of(answers)
        acknowledged = post_json(server, "/feedback", {"outcomes": given})
        assert acknowledged.status == 200, acknowledged.body
        assert json.loads(acknowledged.body) == {"outcomes": 20, "labelled": 20, "already_labelled": 0}
        kill_outright(server)  # at once after the 200: no flush, no shutdown, nothing after the answer runs
    finally:
        stop(server)

    stored = rows_of(store_url, "SELECT request_id, row_index, survived FROM outcomes")
    assert sorted((f"{r.request_id}/{r.row_index}", r.survived) for r in stored) == sorted(
        (o["prediction_id"], o["survived"]) for o in given
    )
    with running(tmp_path / "second", model_dir, **{**env, "WEB_CONCURRENCY": "1"}) as restarted:
        assert "(ready)" in restarted.output()  # the schema was there: nothing was migrated again
        again = post_json(restarted, "/feedback", {"outcomes": given})
        assert again.status == 200, again.body
        assert json.loads(again.body) == {"outcomes": 20, "labelled": 0, "already_labelled": 20}
        flipped = {"prediction_id": given[3]["prediction_id"], "survived": 1 - given[3]["survived"]}
        contradicted = post_json(restarted, "/feedback", {"outcomes": [flipped]})
        assert contradicted.status == 409, contradicted.body
        assert given[3]["prediction_id"] in contradicted.body.decode()


def test_postgresql_down_and_back_the_answers_go_on_and_the_writes_resume(
    model_dir: Path, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    env = {"STORE_URL": postgres_url, "WEB_CONCURRENCY": "2", "STORE_CONNECT_TIMEOUT_S": "1", **FAST_FLUSH}
    with running(tmp_path / "server", model_dir, **env) as server:
        before = [predict(server, f"before-{i}", passengers(3, seed=i)) for i in range(10)]
        wait_for("30 predictions written", lambda: metric(server, "store_written_total") == 30, 20, server)
        assert stored_predictions(postgres_url) == 30

        postgres_server.stop("fast")
        try:
            for i in range(10):
                predict(server, f"during-{i}", passengers(3, seed=100 + i))  # a 200 with its answer (checked)
                assert server.request("GET", "/ready").status == 200
            labelled = post_json(server, "/feedback", {"outcomes": outcomes_of(before[:1])})
            assert labelled.status == 503, labelled.body  # nothing can be recorded, and it says so
            dropped = wait_for(
                "the outage's 30 predictions counted as dropped",
                lambda: metric(server, "store_dropped_total", reason="write_failed") == 30,
                20,
                server,
            )
            assert dropped
            assert server.request("GET", "/ready").status == 200
        finally:
            postgres_server.start()

        for i in range(10):
            predict(server, f"after-{i}", passengers(3, seed=200 + i))
        wait_for("60 predictions written", lambda: metric(server, "store_written_total") == 60, 20, server)
        assert metric(server, "store_dropped_total", reason="write_failed") == 30
        assert metric(server, "store_dropped_total", reason="queue_full") == 0
        assert metric(server, "store_queue_depth") == 0
    ids = {r.request_id for r in rows_of(postgres_url, "SELECT DISTINCT request_id FROM predictions")}
    assert ids == {f"before-{i}" for i in range(10)} | {f"after-{i}" for i in range(10)}
    assert stored_predictions(postgres_url) == 60
    # Logged, but once per interval and worker, not once per failed batch.
    warnings = server.output().count("answers still go out")
    assert 1 <= warnings <= 2, server.output()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigterm_writes_every_prediction_answered_before_it(
    model_dir: Path, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    url = f"sqlite:///{tmp_path}/predictions.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    shared = tmp_path / "prometheus"
    # A flush every 30 s: only the SIGTERM flush can write what the test sends.
    env = {
        "STORE_URL": url,
        "WEB_CONCURRENCY": "2",
        "STORE_FLUSH_INTERVAL_S": "30",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    server = launch(tmp_path / "server", {"MODEL_DIR": str(model_dir), **env})
    try:
        wait_ready(server)
        wait_for("both workers started", lambda: len(list(shared.glob("gauge_livemostrecent_*.db"))) >= 2, 60)
        answers = on_every_worker(
            lambda i: predict(server, f"term-{i}", passengers(5, seed=i)), shared, tmp_path / "counts"
        )
        assert stored_predictions(url) == 0  # all still queued
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0, server.output()
    finally:
        stop(server)

    served = {
        (p["id"], p["batchnorm"]["survival_probability"], p["plain"]["survival_probability"])
        for answer in answers
        for p in answer["predictions"]
    }
    stored = rows_of(url, "SELECT request_id, row_index, p_batchnorm, p_plain, answered FROM predictions")
    assert {r.answered for r in stored} == {"both"}
    assert {(f"{r.request_id}/{r.row_index}", r.p_batchnorm, r.p_plain) for r in stored} == served
    assert len(stored) == len(served) == 5 * len(answers)
