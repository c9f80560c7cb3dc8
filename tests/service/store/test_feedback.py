"""POST /feedback through the real app and a real SQLite store: outcomes by prediction id or PassengerId, JSON and
CSV (Kaggle's train.csv unchanged), all of a request's outcomes or none, contradictions, strictness, bounds, keys,
and never a 500."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from support.app import app_client

from service.config import Settings
from service.store.tables import outcomes, predictions

CSV: Final = {"content-type": "text/csv"}
JSON: Final = {"content-type": "application/json"}
# The store's unknown-id re-check waits two flush intervals: kept short here.
FLUSH_S: Final = 0.01


def store_settings(model_dir: Path, db: Path, **options: Any) -> Settings:
    """Settings of an app recording into the SQLite file `db`."""
    return Settings(model_dir=model_dir, store_url=f"sqlite:///{db}", store_flush_interval_s=FLUSH_S, **options)


class Running:
    """A running app and a connection of its own to the app's SQLite file (to see what is committed)."""

    def __init__(self, client: TestClient, db: Path) -> None:
        self.client = client
        self.engine = sa.create_engine(f"sqlite:///{db}")

    def predict(self, request_id: str, passengers: list[dict[str, Any]]) -> list[str]:
        """Predict for `passengers` under `request_id`; the prediction ids answered."""
        answer = self.client.post("/predict", json={"passengers": passengers}, headers={"X-Request-ID": request_id})
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["predictions"]]

    def predict_csv(self, request_id: str, body: bytes) -> int:
        """Predict for a CSV body under `request_id`; the rows answered."""
        answer = self.client.post("/predict", content=body, headers={**CSV, "X-Request-ID": request_id})
        assert answer.status_code == 200, answer.text
        return len(answer.json()["predictions"])

    def feedback(self, items: list[dict[str, Any]]) -> Any:
        """POST /feedback with JSON outcomes."""
        return self.client.post("/feedback", json={"outcomes": items})

    def labels(self, request_id: str) -> dict[int, int]:
        """The outcomes recorded for the request's predictions (row -> survived), as committed."""
        query = sa.select(outcomes.c.row_index, outcomes.c.survived).where(outcomes.c.request_id == request_id)
        with self.engine.connect() as connection:
            return {row.row_index: row.survived for row in connection.execute(query)}

    def labelled_total(self) -> float:
        """store_outcomes_total from the app's registry."""
        registry = self.client.app.state.service.telemetry.registry  # type: ignore[attr-defined]
        return registry.get_sample_value("store_outcomes_total") or 0.0


@contextmanager
def serving(settings: Settings, db: Path) -> Iterator[Running]:
    """The app of `settings` running, with a view of its store."""
    with app_client(settings) as client:
        served = Running(client, db)
        try:
            yield served
        finally:
            served.engine.dispose()


@pytest.fixture(scope="module")
def app(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One app and store for the module's tests (each uses request ids and PassengerIds of its own)."""
    db = tmp_path_factory.mktemp("feedback") / "s.db"
    with serving(store_settings(model_dir, db), db) as served:
        yield served


PASSENGERS: Final[list[dict[str, Any]]] = [
    {"pclass": 3, "fare": 7.25, "age": 22},
    {"pclass": 1, "fare": 71.28, "age": 38},
    {"pclass": 3},
    {"pclass": 2, "age": 4},
]


def problems(answer: Any) -> list[tuple[str | None, str]]:
    """(field, message) of each problem an error answer names."""
    return [(item.get("field"), item["message"]) for item in answer.json()["errors"]]


def test_json_outcomes_label_the_predictions_they_name(app: Running) -> None:
    ids = app.predict("fb-json", PASSENGERS)
    assert ids == [f"fb-json/{i}" for i in range(4)]
    before = app.labelled_total()
    answer = app.feedback(
        [
            {"prediction_id": ids[0], "survived": 1},
            {"prediction_id": ids[1], "survived": 0},
            {"survived": True, "prediction_id": ids[2]},
            {"prediction_id": ids[3], "survived": False},
        ]
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcomes": 4, "labelled": 4, "already_labelled": 0}
    assert app.labels("fb-json") == {0: 1, 1: 0, 2: 1, 3: 0}  # committed before the answer
    assert app.labelled_total() == before + 4
    # An outcome keeps what the comparison reads of its prediction.
    copied = ["at", "p_batchnorm", "p_plain", "answered", "run_id"]
    with app.engine.connect() as connection:
        made = connection.execute(
            sa.select(*(predictions.c[c] for c in copied))
            .where(predictions.c.request_id == "fb-json")
            .order_by(predictions.c.row_index)
        ).all()
        kept = connection.execute(
            sa.select(outcomes.c.predicted_at, *(outcomes.c[c] for c in copied[1:]))
            .where(outcomes.c.request_id == "fb-json")
            .order_by(outcomes.c.row_index)
        ).all()
    assert [tuple(row) for row in kept] == [tuple(row) for row in made]


def test_csv_outcomes_by_prediction_id(app: Running) -> None:
    ids = app.predict("fb-csv", PASSENGERS[:3])
    body = f"PredictionId,Survived\n{ids[0]},1\n{ids[1]},0\n{ids[2]},TRUE\n".encode()
    answer = app.client.post("/feedback", content=body, headers=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcomes": 3, "labelled": 3, "already_labelled": 0}
    assert app.labels("fb-csv") == {0: 1, 1: 0, 2: 1}


def test_a_passenger_id_labels_every_prediction_that_carried_it(app: Running) -> None:
    body = b"PassengerId,Pclass,Fare,Age\n5001,3,7.25,22\n5002,1,,\n"
    assert app.predict_csv("fb-pid-a", body) == 2
    assert app.predict_csv("fb-pid-b", body) == 2
    answer = app.feedback([{"passenger_id": "5001", "survived": 1}])
    assert answer.json() == {"outcomes": 1, "labelled": 2, "already_labelled": 0}
    answer = app.client.post("/feedback", content=b"PassengerId,Survived\n5002,0\n", headers=CSV)
    assert answer.json() == {"outcomes": 1, "labelled": 2, "already_labelled": 0}
    assert app.labels("fb-pid-a") == app.labels("fb-pid-b") == {0: 1, 1: 0}


def test_kaggles_train_csv_is_predicted_and_then_fed_back_unchanged(app: Running, kaggle_train_path: Path) -> None:
    body = kaggle_train_path.read_bytes()
    with kaggle_train_path.open(newline="") as file:
        truth = {row["PassengerId"]: int(row["Survived"]) for row in csv.DictReader(file)}
    assert app.predict_csv("kaggle-train", body) == len(truth) == 891
    answer = app.client.post("/feedback", content=body, headers=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcomes": 891, "labelled": 891, "already_labelled": 0}
    with app.engine.connect() as connection:
        recorded = connection.execute(
            sa.select(predictions.c.passenger_id, outcomes.c.survived)
            .join(
                outcomes,
                (outcomes.c.request_id == predictions.c.request_id) & (outcomes.c.row_index == predictions.c.row_index),
            )
            .where(predictions.c.request_id == "kaggle-train")
        ).all()
    assert {row.passenger_id: row.survived for row in recorded} == truth
    again = app.client.post("/feedback", content=body, headers=CSV)
    assert again.json() == {"outcomes": 891, "labelled": 0, "already_labelled": 891}


def test_one_unknown_id_among_good_ones_records_nothing_and_is_named(app: Running) -> None:
    ids = app.predict("fb-atom", PASSENGERS[:3])
    answer = app.feedback(
        [
            {"prediction_id": ids[0], "survived": 1},
            {"prediction_id": "fb-atom/7", "survived": 0},
            {"prediction_id": ids[1], "survived": 1},
            {"prediction_id": "nobody-made-this/0", "survived": 1},
            {"passenger_id": "777777", "survived": 1},
        ]
    )
    assert answer.status_code == 422
    assert problems(answer) == [
        ("outcomes[1].prediction_id", "no recorded prediction has prediction_id fb-atom/7"),
        ("outcomes[3].prediction_id", "no recorded prediction has prediction_id nobody-made-this/0"),
        ("outcomes[4].passenger_id", "no recorded prediction has passenger_id 777777"),
    ]
    assert app.labels("fb-atom") == {}
    csv_answer = app.client.post(
        "/feedback", content=f"PredictionId,Survived\n{ids[2]},1\nfb-atom/9,0\n".encode(), headers=CSV
    )
    assert csv_answer.status_code == 422
    assert [(e.get("field"), e.get("row")) for e in csv_answer.json()["errors"]] == [("PredictionId", 2)]
    assert app.labels("fb-atom") == {}
    # The good ones alone are recorded: they were not before.
    answer = app.feedback([{"prediction_id": ids[0], "survived": 1}, {"prediction_id": ids[1], "survived": 1}])
    assert answer.json() == {"outcomes": 2, "labelled": 2, "already_labelled": 0}


def test_an_id_given_twice_with_different_outcomes_names_both_places_and_records_nothing(app: Running) -> None:
    ids = app.predict("fb-twice", PASSENGERS[:2])
    answer = app.feedback(
        [
            {"prediction_id": ids[0], "survived": 1},
            {"prediction_id": ids[1], "survived": 1},
            {"prediction_id": ids[0], "survived": 0},
        ]
    )
    assert answer.status_code == 422
    [(field, message)] = problems(answer)
    assert field == "outcomes[2].prediction_id"
    assert message == f"{ids[0]} is given twice with different outcomes (outcomes[0] and outcomes[2])"
    body = f"PredictionId,Survived\n{ids[1]},0\n{ids[0]},1\n{ids[1]},1\n".encode()
    answer = app.client.post("/feedback", content=body, headers=CSV)
    assert answer.status_code == 422
    assert "(row 1 and row 3)" in answer.json()["detail"]
    assert app.labels("fb-twice") == {}
    # A prediction id and a PassengerId naming the same prediction must agree too.
    assert app.predict_csv("fb-twice-csv", b"PassengerId,Pclass,Fare,Age\n5101,2,,\n") == 1
    answer = app.feedback([{"passenger_id": "5101", "survived": 1}, {"prediction_id": "fb-twice-csv/0", "survived": 0}])
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "names the same prediction as outcomes[" in detail
    assert "outcomes[0]" in detail
    assert "outcomes[1]" in detail
    assert app.labels("fb-twice-csv") == {}
    # The same outcome twice is one outcome.
    answer = app.feedback([{"prediction_id": ids[0], "survived": 1}, {"prediction_id": ids[0], "survived": True}])
    assert answer.json() == {"outcomes": 2, "labelled": 1, "already_labelled": 0}


def test_contradicting_a_recorded_outcome_is_409_and_the_same_outcome_again_counts_once(app: Running) -> None:
    ids = app.predict("fb-409", PASSENGERS[:3])
    assert app.feedback([{"prediction_id": ids[0], "survived": 1}]).status_code == 200
    before = app.labelled_total()
    answer = app.feedback([{"prediction_id": ids[1], "survived": 1}, {"prediction_id": ids[0], "survived": 0}])
    assert answer.status_code == 409
    assert problems(answer) == [("outcomes[1].survived", f"prediction {ids[0]} already has outcome 1, this says 0")]
    assert app.labels("fb-409") == {0: 1}  # ids[1] was not recorded either
    # A contradiction and an unknown id: the request itself is wrong (422), naming both.
    answer = app.feedback([{"prediction_id": ids[0], "survived": 0}, {"prediction_id": "fb-409/5", "survived": 0}])
    assert answer.status_code == 422
    assert {field for field, _ in problems(answer)} == {"outcomes[0].survived", "outcomes[1].prediction_id"}
    # The same outcome again is no error, and is not counted again.
    answer = app.feedback([{"prediction_id": ids[0], "survived": True}, {"prediction_id": ids[2], "survived": 0}])
    assert answer.status_code == 200
    assert answer.json() == {"outcomes": 2, "labelled": 1, "already_labelled": 1}
    assert app.labels("fb-409") == {0: 1, 2: 0}
    assert app.labelled_total() == before + 1


SURVIVED_REFUSED: Final[list[Any]] = [2, -1, 1.0, 0.0, "1", "true", None, [1], {"v": 1}]


@pytest.mark.parametrize("n", range(len(SURVIVED_REFUSED)), ids=[json.dumps(v) for v in SURVIVED_REFUSED])
def test_survived_must_be_0_1_true_or_false(app: Running, n: int) -> None:
    ids = app.predict(f"fb-value-{n}", PASSENGERS[:1])
    answer = app.feedback([{"prediction_id": ids[0], "survived": SURVIVED_REFUSED[n]}])
    assert answer.status_code == 422
    assert problems(answer) == [("outcomes[0].survived", "must be 0, 1, true or false")]
    assert app.labels(f"fb-value-{n}") == {}


def test_malformed_outcomes_are_refused_naming_the_field(app: Running) -> None:
    ids = app.predict("fb-fields", PASSENGERS[:1])
    cases: list[tuple[Any, str | None]] = [
        ([{"prediction_id": ids[0], "survived": 1, "note": "x"}], "outcomes[0].note"),
        ([{"prediction_id": ids[0]}], "outcomes[0].survived"),
        ([{"prediction_id": ids[0], "passenger_id": "1", "survived": 1}], "outcomes[0]"),
        ([{"survived": 1}], "outcomes[0]"),
        ([{"prediction_id": "fb-fields", "survived": 1}], "outcomes[0].prediction_id"),
        ([{"prediction_id": 7, "survived": 1}], "outcomes[0].prediction_id"),
        # A row is ASCII digits: not a superscript two, not an Arabic-Indic zero standing for fb-fields/0.
        ([{"prediction_id": "fb-fields/\u00b2", "survived": 1}], "outcomes[0].prediction_id"),
        ([{"prediction_id": "fb-fields/\u0660", "survived": 1}], "outcomes[0].prediction_id"),
        ([{"prediction_id": "fb-fields/-0", "survived": 1}], "outcomes[0].prediction_id"),
        # Written as an answer writes it: "01" is not guessed to be row 1.
        ([{"prediction_id": "fb-fields/01", "survived": 1}], "outcomes[0].prediction_id"),
        ([{"passenger_id": "=cmd()", "survived": 1}], "outcomes[0].passenger_id"),
        ([7], "outcomes[0]"),
    ]
    for items, field in cases:
        answer = app.feedback(items)
        assert answer.status_code == 422, (items, answer.text)
        assert problems(answer)[0][0] == field, (items, answer.text)
    good = {"prediction_id": ids[0], "survived": 1}
    bodies: list[Any] = [{"outcomes": []}, {"outcomes": {}}, {"outcomes": [good], "more": 1}, [], None]
    for body in bodies:
        answer = app.client.post("/feedback", content=json.dumps(body), headers=JSON)
        assert answer.status_code == 422, (body, answer.text)
        assert "outcomes" in answer.json()["detail"]
    assert app.client.post("/feedback", content=b'{"outcomes": [', headers=JSON).status_code == 400
    assert app.client.post("/feedback", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert app.client.post("/feedback?x=1", json={"outcomes": [good]}).status_code == 422
    for text in (
        b"PredictionId,Outcome\nr/0,1\n",
        b"PredictionId,Survived\n",
        b"PredictionId,Survived\nr/0,yes\n",
        "PredictionId,Survived\nfb-fields/\u00b2,1\n".encode(),
    ):
        assert app.client.post("/feedback", content=text, headers=CSV).status_code == 422, text
    assert app.labels("fb-fields") == {}


def test_too_many_outcomes_or_bytes_is_413(model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with serving(store_settings(model_dir, db, max_feedback_outcomes=3, max_body_bytes=2048), db) as app:
        ids = app.predict("fb-413", PASSENGERS)
        four = [{"prediction_id": i, "survived": 1} for i in ids]
        assert app.feedback(four).status_code == 413
        rows = "".join(f"{i},1\n" for i in ids)
        assert (
            app.client.post("/feedback", content=f"PredictionId,Survived\n{rows}".encode(), headers=CSV).status_code
            == 413
        )
        assert app.feedback(four[:3]).json() == {"outcomes": 3, "labelled": 3, "already_labelled": 0}
        padded = json.dumps({"outcomes": four[3:]}).encode() + b" " * 2048
        answer = app.client.post("/feedback", content=padded, headers=JSON)
        assert answer.status_code == 413
        assert app.labels("fb-413") == {0: 1, 1: 1, 2: 1}


def test_data_keys_guard_feedback(model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with serving(store_settings(model_dir, db, api_keys=SecretStr("data-key-0123456789")), db) as app:
        key = {"X-API-Key": "data-key-0123456789"}
        answer = app.client.post("/predict", json=PASSENGERS[0], headers={**key, "X-Request-ID": "fb-key"})
        assert answer.status_code == 200
        item = {"outcomes": [{"prediction_id": "fb-key/0", "survived": 1}]}
        assert app.client.post("/feedback", json=item).status_code == 401
        assert app.client.post("/feedback", json=item, headers={"X-API-Key": "wrong"}).status_code in (401, 403)
        assert app.labels("fb-key") == {}
        answer = app.client.post("/feedback", json=item, headers={"Authorization": "Bearer data-key-0123456789"})
        assert answer.status_code == 200
        assert app.labels("fb-key") == {0: 1}


def test_without_a_store_feedback_is_404(model_dir: Path) -> None:
    with app_client(Settings(model_dir=model_dir, store_url="none")) as client:
        answer = client.post("/feedback", json={"outcomes": [{"prediction_id": "r/0", "survived": 1}]})
        assert answer.status_code == 404
        assert "STORE_URL=none" in answer.json()["detail"]
        assert client.get("/comparison").status_code == 404


# Items near the valid ones (so some are recorded, some contradict, some repeat) and anything else JSON holds.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids_drawn = st.one_of(
    st.sampled_from(["fz/0", "fz/1", "fz/2", "fz/9", "fz", "x/0", "6001", "6002", "", "fz/01", "fz/-1"]),
    st.text(max_size=3).map(lambda row: f"fz/{row}"),
)
items_drawn = st.one_of(
    st.fixed_dictionaries(
        {"prediction_id": ids_drawn, "survived": st.sampled_from([0, 1, True, False, 2, "1", 1.0, None])}
    ),
    st.fixed_dictionaries({"passenger_id": ids_drawn, "survived": st.sampled_from([0, 1, True])}),
    st.dictionaries(st.sampled_from(["prediction_id", "passenger_id", "survived", "x"]), json_values, max_size=3),
    json_values,
)
bodies_drawn = st.one_of(
    st.fixed_dictionaries({"outcomes": st.lists(items_drawn, max_size=6)}),
    json_values,
)


def test_no_body_is_ever_a_server_error(model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with serving(store_settings(model_dir, db, max_feedback_outcomes=5), db) as app:
        app.predict("fz", PASSENGERS[:3])
        assert app.predict_csv("fz-csv", b"PassengerId,Pclass,Fare,Age\n6001,1,,\n6002,3,8,\n") == 2

        seen: set[int] = set()

        # Derandomized: the same bodies every run, so that what they reach (below) is a fact, not luck.
        @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
        @given(body=bodies_drawn)
        def check(body: Any) -> None:
            before = (app.labels("fz"), app.labels("fz-csv"))
            answer = app.client.post("/feedback", content=json.dumps(body), headers=JSON)
            assert answer.status_code in (200, 400, 409, 413, 422), answer.text
            seen.add(answer.status_code)
            if answer.status_code == 200:
                counts = answer.json()
                assert counts["outcomes"] == len(body["outcomes"])
                # Recorded outcomes never change.
                assert set(app.labels("fz").items()) >= set(before[0].items())
                assert set(app.labels("fz-csv").items()) >= set(before[1].items())
            else:
                assert answer.json()["detail"]
                assert (app.labels("fz"), app.labels("fz-csv")) == before  # nothing recorded

        check()
        assert {200, 413, 422} <= seen  # some bodies were recorded, some refused
