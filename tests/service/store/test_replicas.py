"""Two replicas of `python -m service` on one PostgreSQL database tell one truth: predictions answered by one and
outcomes fed back through the other give the same comparison from both, /monitoring's window is the store's on
both, and two replicas started on an empty database at the same moment migrate it once, one after the other."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
from store_servers import (
    CSV,
    engine_of,
    get_json,
    passengers,
    post_json,
    predict,
    replicas,
    rows_of,
    wait_for,
    wait_stored,
)
from support.servers import Server, launch, stop, wait_ready

from service.store.migrate import ADVISORY_LOCK_KEY
from service.store.tables import SCHEMA_REVISION

pytestmark = pytest.mark.system  # real servers on a real PostgreSQL

FAST_FLUSH: Final = {"STORE_FLUSH_INTERVAL_S": "0.2"}
# The Kaggle test set's first passengers (PassengerId, Pclass, Fare, Age; one without an age).
KAGGLE_ROWS: Final = [
    ("892", 3, 7.8292, "34.5"),
    ("893", 3, 7.0, "47"),
    ("894", 2, 9.6875, "62"),
    ("895", 3, 8.6625, "27"),
    ("896", 3, 12.2875, "22"),
    ("897", 3, 9.225, "14"),
    ("898", 3, 7.6292, "30"),
    ("899", 2, 29.0, "26"),
    ("900", 3, 7.2292, "18"),
    ("901", 3, 24.15, ""),
]
MODELS: Final = ("batchnorm", "plain")


def predict_csv(server: Server) -> dict[str, Any]:
    """KAGGLE_ROWS as a CSV with PassengerIds, answered in JSON."""
    body = "PassengerId,Pclass,Fare,Age\n" + "".join(f"{pid},{c},{f},{a}\n" for pid, c, f, a in KAGGLE_ROWS)
    answer = server.request("POST", "/predict", body.encode(), {**CSV, "accept": "application/json"})
    assert answer.status == 200, answer.body
    parsed: dict[str, Any] = json.loads(answer.body)
    assert parsed["passenger_ids"] == [pid for pid, *_ in KAGGLE_ROWS]
    return parsed


def expected_comparison(predictions: list[dict[str, Any]], survived: list[int]) -> dict[str, Any]:
    """Accuracy, log-loss and Brier per model and the paired counts, recomputed from the answers and the outcomes."""
    models = {}
    for name in MODELS:
        p = [prediction[name]["survival_probability"] for prediction in predictions]
        right = [prediction[name]["survived"] == bool(y) for prediction, y in zip(predictions, survived, strict=True)]
        models[name] = {
            "n": len(p),
            "accuracy": sum(right) / len(right),
            "brier": sum((pi - y) ** 2 for pi, y in zip(p, survived, strict=True)) / len(p),
            "log_loss": -sum(math.log(pi if y else 1 - pi) for pi, y in zip(p, survived, strict=True)) / len(p),
            "right": right,
        }
    bn, plain = models["batchnorm"].pop("right"), models["plain"].pop("right")
    paired = {
        "n": len(survived),
        "both_right": sum(b and q for b, q in zip(bn, plain, strict=True)),
        "both_wrong": sum(not b and not q for b, q in zip(bn, plain, strict=True)),
        "only_batchnorm_right": sum(b and not q for b, q in zip(bn, plain, strict=True)),
        "only_plain_right": sum(q and not b for b, q in zip(bn, plain, strict=True)),
    }
    return {"models": models, "paired": paired}


def test_predictions_through_one_replica_outcomes_through_the_other_one_comparison(
    model_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    env = {"STORE_URL": postgres_url, **FAST_FLUSH}
    with replicas(tmp_path, model_dir, {**env, "WEB_CONCURRENCY": "2"}, {**env, "WEB_CONCURRENCY": "1"}) as (a, b):
        answers = [predict(a, f"replica-a-{i}", passengers(6, seed=i)) for i in range(10)]
        kaggle = predict_csv(a)
        wait_stored(postgres_url, 70, a, b)
        rng = random.Random(7)
        labels = {p["id"]: rng.randint(0, 1) for answer in answers for p in answer["predictions"]}
        by_passenger = {pid: rng.randint(0, 1) for pid, *_ in KAGGLE_ROWS}

        # Through the other replica: JSON naming prediction ids, then a Kaggle-style CSV naming PassengerIds.
        outcomes = [{"prediction_id": pid, "survived": y} for pid, y in labels.items()]
        recorded = post_json(b, "/feedback", {"outcomes": outcomes})
        assert recorded.status == 200, recorded.body
        assert json.loads(recorded.body) == {"outcomes": 60, "labelled": 60, "already_labelled": 0}
        csv = "PassengerId,Survived\n" + "".join(f"{pid},{y}\n" for pid, y in by_passenger.items())
        recorded = b.request("POST", "/feedback", csv.encode(), CSV)
        assert recorded.status == 200, recorded.body
        assert json.loads(recorded.body) == {"outcomes": 10, "labelled": 10, "already_labelled": 0}

        # Several reads of each: the two workers of `a` and the one of `b` must all answer the same.
        first = wait_for("GET /comparison counting the 70 outcomes", lambda: labelled_comparison(a, 70), 20, a, b)
        others = [labelled_comparison(server, 70) for server in (a, a, a, b, b, b)]
    assert all(body == first for body in others), others

    served = [p for answer in answers for p in answer["predictions"]] + kaggle["predictions"]
    survived = [labels[p["id"]] for answer in answers for p in answer["predictions"]] + list(by_passenger.values())
    expected = expected_comparison(served, survived)
    assert first["n_predictions"] == 70
    assert first["n_labelled"] == 70
    for name in MODELS:
        model = first["models"][name]
        for key, value in expected["models"][name].items():
            assert model[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
    for key, value in expected["paired"].items():
        assert first["paired"][key] == value, key
    difference = expected["models"]["batchnorm"]["accuracy"] - expected["models"]["plain"]["accuracy"]
    assert first["paired"]["accuracy_difference"] == pytest.approx(difference, abs=1e-12)
    assert first["answer"] == "both"
    # All 70 are within the recent window (COMPARISON_WINDOW, 1000): the recent scores are the overall ones.
    assert first["recent"]["n"] == 70
    assert first["recent"]["models"] == first["models"]
    assert first["recent"]["paired"]["n"] == 70
    assert first["recent"]["paired"]["only_plain_right"] == expected["paired"]["only_plain_right"]


def labelled_comparison(server: Server, labelled: int) -> dict[str, Any] | None:
    """GET /comparison's body once it counts `labelled` outcomes, else None."""
    status, body = get_json(server, "/comparison")
    assert status == 200, body
    return body if isinstance(body, dict) and body.get("n_labelled") == labelled else None


def window_report(server: Server) -> dict[str, Any]:
    """What /monitoring says of its window and drift, less when this worker last emptied its window."""
    status, report = get_json(server, "/monitoring")
    assert status == 200, report
    window = dict(report["window"])
    window.pop("reset_at")
    return {"window": window, "features": report["features"], "activations": report["activations"]}


def test_monitoring_reads_one_window_from_the_store_on_every_replica(
    model_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    env = {"STORE_URL": postgres_url, "MONITOR_WINDOW": "100", "MONITOR_MIN_WINDOW": "20", **FAST_FLUSH}
    with replicas(tmp_path, model_dir, {**env, "WEB_CONCURRENCY": "2"}, {**env, "WEB_CONCURRENCY": "1"}) as (a, b):
        # First class through b, then third class through a: the last 100 are b's last 40 and a's 60. A window
        # kept by each worker would hold at most 60, and only one class.
        for i in range(6):
            predict(b, f"first-{i}", passengers(10, seed=i, pclass=1))
        for i in range(6):
            predict(a, f"third-{i}", passengers(10, seed=10 + i, pclass=3))
        wait_stored(postgres_url, 120, a, b)

        def same_window() -> dict[str, Any] | None:
            reports = [window_report(server) for server in (a, a, a, a, b, b)]
            full = all(report["window"]["size"] == 100 for report in reports)
            return reports[0] if full and all(report == reports[0] for report in reports) else None

        report = wait_for("the same 100-passenger window on every worker of both replicas", same_window, 20, a, b)
    assert report["window"]["capacity"] == 100
    pclass = next(feature for feature in report["features"] if feature["feature"] == "pclass")
    assert pclass["n_window"] == 100
    fractions = dict(zip(pclass["distribution"]["labels"], pclass["distribution"]["window"], strict=True))
    assert {float(label): share for label, share in fractions.items()} == pytest.approx({1.0: 0.4, 2.0: 0.0, 3.0: 0.6})
    # The oldest passenger in the window is one of b's third request (the first two fell out of it).
    oldest = rows_of(postgres_url, "SELECT at FROM predictions WHERE request_id = 'first-2' AND row_index = 0")[0].at
    assert datetime.fromisoformat(report["window"]["since"]).timestamp() == pytest.approx(oldest, abs=1e-3)


def test_two_replicas_started_at_once_on_an_empty_database_migrate_it_once(
    model_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    env = {"MODEL_DIR": str(model_dir), "STORE_URL": postgres_url, **FAST_FLUSH}
    holder = engine_of(postgres_url)
    servers: list[Server] = []
    try:
        # The test holds the migration's lock, so both launchers reach it and wait there at the same time.
        with holder.connect() as lock:
            lock.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            lock.commit()
            servers = [launch(tmp_path / f"replica{i}", env) for i in range(2)]
            wait_for("both launchers waiting for the migration's lock", lambda: waiting_for_lock(postgres_url) == 2)
            assert not any(server.ready() for server in servers)
            assert tables(postgres_url) == set()  # neither went past the lock
            lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            lock.commit()
        for server in servers:
            wait_ready(server)
        versions = rows_of(postgres_url, "SELECT version_num FROM alembic_version")
        assert [row.version_num for row in versions] == [SCHEMA_REVISION]
        assert {"predictions", "outcomes", "runs", "control"} <= tables(postgres_url)
        for i, server in enumerate(servers):
            predict(server, f"started-{i}", passengers(3, seed=i))
        wait_stored(postgres_url, 6, *servers)
    finally:
        for server in servers:
            stop(server)
        holder.dispose()
    for server in servers:
        assert "error:" not in server.output(), server.output()


def waiting_for_lock(url: str) -> int:
    """Sessions of the database waiting for an advisory lock."""
    sql = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(rows_of(url, sql)[0][0])


def tables(url: str) -> set[str]:
    """The tables of the database's public schema."""
    engine = engine_of(url)
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()
