"""The champion switched at run time (PUT /admin/champion) is followed by every worker of the replica that was asked
and by a second replica on the same PostgreSQL database, through the store's control table, without a restart; the
store records who answered."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from store_servers import (
    get_json,
    on_every_worker,
    passengers,
    predict,
    replicas,
    rows_of,
    wait_for,
    worker_counts,
)
from support.servers import Server

pytestmark = pytest.mark.system  # real servers on a real PostgreSQL

DATA_KEY: Final = "data-key-0123456789abcdef"
ADMIN_KEY: Final = "admin-key-0123456789abcdef"
DATA: Final = {"authorization": f"Bearer {DATA_KEY}"}
ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
POLL_S: Final = 0.5
# How long every worker and replica has to follow a switch: the poll, the writer's wake-up, and a loaded machine.
FOLLOW_S: Final = 10.0


def answering(answer: dict[str, Any]) -> set[str]:
    """The models an answer's predictions carry."""
    return {name for p in answer["predictions"] for name in ("batchnorm", "plain") if name in p}


def switch(server: Server, mode: str) -> dict[str, Any]:
    """PUT /admin/champion; its JSON answer, which must be a 200."""
    answer = server.request("PUT", "/admin/champion", json.dumps({"answer": mode}).encode(), ADMIN)
    assert answer.status == 200, answer.body
    parsed: dict[str, Any] = json.loads(answer.body)
    return parsed


def followed_by_every_worker(
    server: Server, shared: Path, scratch: Path, prefix: str, models: set[str]
) -> list[dict[str, Any]]:
    """Rounds of requests to `server` (on new connections) until one round reached each of its two workers and
    every answer of it carried `models` only; that round's answers. Bounded by FOLLOW_S."""
    deadline = time.monotonic() + FOLLOW_S
    for attempt in itertools.count():
        before = worker_counts(shared, scratch, "predictions_total", model="plain")
        answers = on_every_worker(sender(server, f"{prefix}-{attempt}"), shared, scratch, since=before)
        if all(answering(answer) == models for answer in answers):
            return answers
        if time.monotonic() > deadline:
            seen = Counter(" and ".join(sorted(answering(answer))) for answer in answers)
            raise AssertionError(f"not every worker answers with {models} after {FOLLOW_S:.0f} s: {dict(seen)}")
    raise AssertionError("unreachable")


def sender(server: Server, prefix: str) -> Callable[[int], dict[str, Any]]:
    """Request i: two passengers under the id `prefix-i`."""
    return lambda i: predict(server, f"{prefix}-{i}", passengers(2, seed=i), DATA)


def follows(server: Server, prefix: str, models: set[str]) -> list[dict[str, Any]]:
    """Requests to a one-worker replica until its answers carry `models` only (bounded); ten more that must."""
    wait_for(
        f"the second replica answering with {models}",
        lambda: (
            answering(predict(server, f"{prefix}-wait-{time.monotonic_ns()}", passengers(1, seed=0), DATA)) == models
        ),
        FOLLOW_S,
        server,
    )
    return [predict(server, f"{prefix}-{i}", passengers(2, seed=i), DATA) for i in range(10)]


def stored_rows(url: str, ids: set[str]) -> dict[str, Any] | None:
    """Every stored prediction by its id, once all of `ids` are stored; else None."""
    rows = rows_of(url, "SELECT request_id, row_index, answered, p_batchnorm, p_plain FROM predictions")
    stored = {f"{r.request_id}/{r.row_index}": r for r in rows}
    return stored if ids <= stored.keys() else None


def test_a_switched_champion_is_followed_by_every_worker_and_replica(
    model_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    shared = tmp_path / "prometheus"
    env = {
        "STORE_URL": postgres_url,
        "STORE_FLUSH_INTERVAL_S": "0.2",
        "CONTROL_POLL_S": str(POLL_S),
        "API_KEYS": DATA_KEY,
        "ADMIN_API_KEYS": ADMIN_KEY,
    }
    first = {**env, "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with replicas(tmp_path, model_dir, first, {**env, "WEB_CONCURRENCY": "1"}) as (a, b):
        wait_for("both workers started", lambda: len(list(shared.glob("gauge_livemostrecent_*.db"))) >= 2, 60, a)
        scratch = tmp_path / "counts"
        both = followed_by_every_worker(a, shared, scratch, "both", {"batchnorm", "plain"})
        both += follows(b, "both-b", {"batchnorm", "plain"})

        data_key = {**ADMIN, **DATA}
        refused = a.request("PUT", "/admin/champion", b'{"answer": "plain"}', data_key)
        assert refused.status == 403, refused.body  # a data key may not switch it
        assert switch(a, "plain") == {"answer": "plain", "previous": "both"}
        plain = followed_by_every_worker(a, shared, scratch, "plain", {"plain"})
        plain += follows(b, "plain-b", {"plain"})
        for server in (a, b):
            status, comparison = get_json(server, "/comparison", DATA)
            assert status == 200, comparison
            assert comparison["answer"] == "plain"

        # Switched back through the other replica: both workers of the first follow it.
        assert switch(b, "both") == {"answer": "both", "previous": "plain"}
        again = followed_by_every_worker(a, shared, scratch, "again", {"batchnorm", "plain"})
        served = {p["id"] for answer in both + plain + again for p in answer["predictions"]}
        stored = wait_for("every answer written", lambda: stored_rows(postgres_url, served), 20, a, b)

    def answered(answers: list[dict[str, Any]]) -> set[str]:
        return {stored[p["id"]].answered for answer in answers for p in answer["predictions"]}

    assert answered(both) == {"both"}
    assert answered(plain) == {"plain"}
    assert answered(again) == {"both"}
    # When plain alone answers, batchnorm still scores every request as the shadow: both are recorded.
    for answer in plain:
        for p in answer["predictions"]:
            row = stored[p["id"]]
            assert row.p_plain == p["plain"]["survival_probability"]
            assert 0 < row.p_batchnorm < 1
