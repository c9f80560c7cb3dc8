"""The ids in every answer and what the store records of it: X-Request-ID honoured or replaced, `<request id>/<row>`
per prediction, the V2 answer's id, and both models' probabilities recorded whichever model answered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.app import app_client

from service.config import Settings
from service.pair import ServedPair
from service.store.tables import predictions
from survival.variants import VARIANTS

GENERATED: Final = re.compile(r"[0-9a-f]{32}")
PASSENGERS: Final = [{"pclass": 3, "fare": 7.25, "age": 22}, {"pclass": 1}, {"pclass": 2, "age": 30}]
RAW: Final = np.array([[3.0, 7.25, 22.0], [1.0, np.nan, np.nan], [2.0, np.nan, 30.0]])


@contextmanager
def recording_app(model_dir: Path, db: Path, **options: Any) -> Iterator[TestClient]:
    """A client of the app recording into the SQLite file `db` (everything is written when the block ends)."""
    with app_client(Settings(model_dir=model_dir, store_url=f"sqlite:///{db}", **options)) as client:
        yield client


def stored(db: Path) -> list[dict[str, Any]]:
    """Every recorded prediction, by id."""
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as connection:
            query = sa.select(predictions).order_by(predictions.c.request_id, predictions.c.row_index)
            return [row._asdict() for row in connection.execute(query)]
    finally:
        engine.dispose()


def v2_body(rows: np.ndarray[Any, np.dtype[np.float64]], request_id: str | None = None) -> dict[str, Any]:
    """A V2 inference request of `rows` (one [N, 3] tensor; NaN is sent as null... so no NaN here)."""
    body: dict[str, Any] = {
        "inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]
    }
    if request_id is not None:
        body["id"] = request_id
    return body


@pytest.fixture(scope="module")
def pair(model_dir: Path) -> ServedPair:
    """The pair the app serves."""
    return ServedPair.load(model_dir)


def test_a_sane_x_request_id_names_the_request_and_its_predictions(model_dir: Path, tmp_path: Path) -> None:
    sent: set[str] = set()
    with recording_app(model_dir, tmp_path / "s.db") as client:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(request_id=st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True))
        def check(request_id: str) -> None:
            answer = client.post("/predict", json={"passengers": PASSENGERS[:2]}, headers={"X-Request-ID": request_id})
            assert answer.status_code == 200
            assert answer.headers["x-request-id"] == request_id
            body = answer.json()
            assert body["request_id"] == request_id
            assert [p["id"] for p in body["predictions"]] == [f"{request_id}/0", f"{request_id}/1"]
            sent.add(request_id)

        check()
    assert {(r["request_id"], r["row_index"]) for r in stored(tmp_path / "s.db")} == {
        (request_id, row) for request_id in sent for row in (0, 1)
    }


@pytest.mark.parametrize(
    "insane", ["", " ", "two words", "x" * 129, "a/b", "caf\u00e9", "semi;colon", "tab\there", "'quoted'", "%41"]
)
def test_an_insane_x_request_id_is_replaced_by_a_generated_one(model_dir: Path, tmp_path: Path, insane: str) -> None:
    with recording_app(model_dir, tmp_path / "s.db") as client:
        answers = [
            client.post("/predict", json=PASSENGERS[0], headers={b"X-Request-ID": insane.encode()}) for _ in range(2)
        ]
    ids = []
    for answer in answers:
        assert answer.status_code == 200
        request_id = answer.json()["request_id"]
        assert GENERATED.fullmatch(request_id), request_id
        assert answer.headers["x-request-id"] == request_id
        assert answer.json()["predictions"][0]["id"] == f"{request_id}/0"
        ids.append(request_id)
    assert ids[0] != ids[1]
    assert [r["request_id"] for r in stored(tmp_path / "s.db")] == sorted(ids)


def test_without_x_request_id_each_request_gets_a_new_id(model_dir: Path, tmp_path: Path) -> None:
    with recording_app(model_dir, tmp_path / "s.db") as client:
        ids = [client.post("/predict", json=PASSENGERS[0]).json()["request_id"] for _ in range(5)]
    assert all(GENERATED.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == 5
    assert sorted(r["request_id"] for r in stored(tmp_path / "s.db")) == sorted(ids)


def test_both_answered_both_recorded_exactly_as_answered(model_dir: Path, tmp_path: Path, pair: ServedPair) -> None:
    with recording_app(model_dir, tmp_path / "s.db") as client:
        answer = client.post("/predict", json={"passengers": PASSENGERS}, headers={"X-Request-ID": "both"})
    assert answer.status_code == 200
    computed = pair.predict(RAW, VARIANTS)
    rows = stored(tmp_path / "s.db")
    assert [(r["request_id"], r["row_index"]) for r in rows] == [("both", i) for i in range(3)]
    for i, (row, prediction) in enumerate(zip(rows, answer.json()["predictions"], strict=True)):
        assert prediction["id"] == f"both/{i}"
        for name in VARIANTS:
            assert row[f"p_{name}"] == prediction[name]["survival_probability"] == computed[name][i]
        assert row["answered"] == "both"
        assert row["run_id"] == answer.json()["models"]["batchnorm"]["run_id"] == pair.run_id
        assert row["passenger_id"] is None


def test_a_csv_request_records_its_passenger_ids(model_dir: Path, tmp_path: Path) -> None:
    body = b"PassengerId,Pclass,Fare,Age\n892,3,7.8292,34.5\n893,3,,\n"
    with recording_app(model_dir, tmp_path / "s.db") as client:
        json_answer = client.post(
            "/predict", content=body, headers={"content-type": "text/csv", "X-Request-ID": "csv-json"}
        )
        csv_answer = client.post(
            "/predict",
            content=body,
            headers={"content-type": "text/csv", "accept": "text/csv", "X-Request-ID": "csv-csv"},
        )
    assert [p["id"] for p in json_answer.json()["predictions"]] == ["csv-json/0", "csv-json/1"]
    assert csv_answer.headers["x-request-id"] == "csv-csv"
    assert csv_answer.text.splitlines()[0] == "PassengerId,Survived"
    rows = stored(tmp_path / "s.db")
    assert [(r["request_id"], r["row_index"], r["passenger_id"], r["fare"]) for r in rows] == [
        ("csv-csv", 0, "892", 7.8292),
        ("csv-csv", 1, "893", None),
        ("csv-json", 0, "892", 7.8292),
        ("csv-json", 1, "893", None),
    ]
    # A CSV answer has one Survived column, batchnorm's; both were scored and recorded.
    assert {r["answered"] for r in rows if r["request_id"] == "csv-csv"} == {"batchnorm"}


def test_with_answer_plain_only_plain_answers_and_the_store_keeps_both(
    model_dir: Path, tmp_path: Path, pair: ServedPair
) -> None:
    with recording_app(model_dir, tmp_path / "s.db", answer="plain") as client:
        answer = client.post("/predict", json={"passengers": PASSENGERS}, headers={"X-Request-ID": "champion"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body["models"]) == {"plain"}
    assert all("batchnorm" not in p and "plain" in p for p in body["predictions"])
    computed = pair.predict(RAW, VARIANTS)
    rows = stored(tmp_path / "s.db")
    assert len(rows) == 3
    for i, (row, prediction) in enumerate(zip(rows, body["predictions"], strict=True)):
        assert row["p_plain"] == prediction["plain"]["survival_probability"] == computed["plain"][i]
        assert row["p_batchnorm"] == computed["batchnorm"][i]  # the shadow
        assert row["answered"] == "plain"


@pytest.mark.parametrize("model", VARIANTS)
def test_a_model_asked_for_answers_alone_and_both_are_recorded(
    model_dir: Path, tmp_path: Path, pair: ServedPair, model: str
) -> None:
    with recording_app(model_dir, tmp_path / "s.db") as client:
        answer = client.post(f"/predict?model={model}", json={"passengers": PASSENGERS})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body["models"]) == {model}
    assert all(set(p) - {"id", "filled"} == {model} for p in body["predictions"])
    computed = pair.predict(RAW, VARIANTS)
    rows = stored(tmp_path / "s.db")
    assert [r["request_id"] for r in rows] == [body["request_id"]] * 3
    for i, row in enumerate(rows):
        assert (row["p_batchnorm"], row["p_plain"]) == (computed["batchnorm"][i], computed["plain"][i])
        assert row["p_" + model] == body["predictions"][i][model]["survival_probability"]
        assert row["answered"] == model


V2_ROWS: Final = np.array([[3.0, 7.25, 22.0], [1.0, 80.0, 40.0]])


def test_a_v2_answers_id_is_the_body_id_else_x_request_id_else_generated(
    model_dir: Path, tmp_path: Path, pair: ServedPair
) -> None:
    with recording_app(model_dir, tmp_path / "s.db") as client:
        url = "/v2/models/plain/infer"
        by_body = client.post(url, json=v2_body(V2_ROWS, "v2-body"), headers={"X-Request-ID": "v2-header"})
        by_header = client.post(url, json=v2_body(V2_ROWS), headers={"X-Request-ID": "v2-header"})
        generated = client.post(url, json=v2_body(V2_ROWS))
        refused = client.post(url, json=v2_body(V2_ROWS, "v2 body"), headers={"X-Request-ID": "v2-refused"})
    for answer, expected in ((by_body, "v2-body"), (by_header, "v2-header")):
        assert answer.status_code == 200
        assert answer.json()["id"] == answer.headers["x-request-id"] == expected
    assert generated.status_code == 200
    assert GENERATED.fullmatch(generated.json()["id"])
    assert generated.headers["x-request-id"] == generated.json()["id"]
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("id must be")
    # Both models scored a call of one; the store says which answered.
    computed = pair.predict(V2_ROWS, VARIANTS)
    rows = stored(tmp_path / "s.db")
    assert sorted({r["request_id"] for r in rows}) == sorted(["v2-body", "v2-header", generated.json()["id"]])
    answered = by_body.json()["outputs"][0]
    assert answered["name"] == "survival_probability"
    for row in rows:
        i = row["row_index"]
        assert (row["p_batchnorm"], row["p_plain"]) == (computed["batchnorm"][i], computed["plain"][i])
        assert row["answered"] == "plain"
        assert row["p_plain"] == answered["data"][i]
