"""The HTTP API against the real app and real checkpoints: predictions, CSV, metadata, metrics, health."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from support.app import app_client
from support.paths import SHIPPED_CSV_PATH

from service.config import Settings
from service.main import create_app
from survival.features import preprocess
from survival.torch_checkpoint import load_pair
from training.data import load_csv
from training.loop import TrainConfig


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """A client of the real app, lifespan included, serving the session's checkpoints."""
    with app_client(model_dir) as test_client:
        yield test_client


def probability(response_json: dict[str, object], row: int, model: str) -> float:
    """The survival probability of `model` for row `row` of a /predict answer."""
    predictions = response_json["predictions"]
    assert isinstance(predictions, list)
    return float(predictions[row][model]["survival_probability"])


def test_predict_single_passenger_answers_both_models(client: TestClient) -> None:
    response = client.post("/predict", json={"pclass": 3, "fare": 7.25, "age": 22})
    assert response.status_code == 200
    body = response.json()
    assert len(body["predictions"]) == 1
    for name in ("batchnorm", "plain"):
        answer = body["predictions"][0][name]
        assert 0 <= answer["survival_probability"] <= 1
        assert answer["survived"] == (answer["survival_probability"] >= 0.5)
        assert len(body["models"][name]["version"]) == 12
    assert body["models"]["batchnorm"]["run_id"] == body["models"]["plain"]["run_id"]


def test_predict_matches_the_checkpoint_model(client: TestClient, model_dir: Path) -> None:
    pair = load_pair(model_dir)
    body = client.post("/predict", json={"pclass": 1, "fare": 80.0, "age": 40}).json()
    for name, ckpt in pair.items():
        x = preprocess(np.array([[1.0, 80.0, 40.0]]), ckpt.metadata.preprocessing)
        with torch.inference_mode():
            expected = torch.sigmoid(ckpt.model(torch.as_tensor(x, dtype=torch.float32))).item()
        assert probability(body, 0, name) == pytest.approx(expected, abs=1e-6)


def test_served_bn_a_passenger_alone_equals_the_same_passenger_in_20_random_batches(client: TestClient) -> None:
    # What is served (folded layers behind POST /predict) uses BN's running statistics: an answer cannot
    # depend on the batch around a passenger, its size or its position in it.
    rng = np.random.default_rng(20)
    target: dict[str, float | int | None] = {"pclass": 2, "fare": 13.0, "age": 30.5}
    alone = client.post("/predict", json=target).json()
    for _ in range(20):
        size = int(rng.integers(2, 700))
        batch: list[dict[str, float | int | None]] = [
            {
                "pclass": int(rng.integers(1, 4)),
                "fare": float(rng.uniform(0, 520)) if rng.random() > 0.05 else None,
                "age": float(rng.uniform(0.5, 80)) if rng.random() > 0.2 else None,
            }
            for _ in range(size - 1)
        ]
        position = int(rng.integers(0, size))
        batch.insert(position, target)
        together = client.post("/predict", json={"passengers": batch}).json()
        assert len(together["predictions"]) == size
        for name in ("batchnorm", "plain"):
            assert abs(probability(together, position, name) - probability(alone, 0, name)) <= 1e-12


def test_predict_alone_equals_inside_a_batch_of_100(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    batch: list[dict[str, float | None]] = [
        {"pclass": int(rng.integers(1, 4)), "fare": float(rng.uniform(0, 300)), "age": float(rng.uniform(1, 80))}
        for _ in range(100)
    ]
    batch[37]["age"] = None
    together = client.post("/predict", json={"passengers": batch}).json()
    assert len(together["predictions"]) == 100
    for i in (0, 37, 99):
        alone = client.post("/predict", json=batch[i]).json()
        for name in ("batchnorm", "plain"):
            assert abs(probability(alone, 0, name) - probability(together, i, name)) <= 1e-6


def test_predict_kaggle_aliases_and_missing_age_use_the_training_median(client: TestClient, model_dir: Path) -> None:
    median = load_pair(model_dir)["plain"].metadata.preprocessing.age_fill
    kaggle = client.post("/predict", json={"Pclass": 2, "Fare": 13.0}).json()
    null_age = client.post("/predict", json={"pclass": 2, "fare": 13.0, "age": None}).json()
    median_age = client.post("/predict", json={"pclass": 2, "fare": 13.0, "age": median}).json()
    for name in ("batchnorm", "plain"):
        assert probability(kaggle, 0, name) == probability(null_age, 0, name) == probability(median_age, 0, name)


def test_predict_accepts_a_pasted_train_csv_row(client: TestClient) -> None:
    row = {
        "PassengerId": 1,
        "Survived": 0,
        "Pclass": 3,
        "Name": "Braund, Mr. Owen Harris",
        "Sex": "male",
        "Age": 22,
        "SibSp": 1,
        "Parch": 0,
        "Ticket": "A/5 21171",
        "Fare": 7.25,
        "Cabin": None,
        "Embarked": "S",
    }
    assert client.post("/predict", json=row).status_code == 200


def test_predict_model_query_selects_one_model(client: TestClient) -> None:
    body = client.post("/predict?model=plain", json={"pclass": 3, "fare": 7.25, "age": 22}).json()
    assert list(body["predictions"][0]) == ["id", "plain"]
    assert list(body["models"]) == ["plain"]
    response = client.post("/predict?model=resnet", json={"pclass": 3, "fare": 7.25})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "model"


@pytest.mark.parametrize(
    ("payload", "field", "status"),
    [
        ({"pclass": 4, "fare": 7.25}, "pclass", 422),
        ({"pclass": True, "fare": 7.25}, "pclass", 422),
        ({"pclass": "3", "fare": 7.25}, "pclass", 422),
        ({"pclass": 3, "fare": -0.01}, "fare", 422),
        ({"pclass": 3, "fare": 10_000.01}, "fare", 422),
        ({"pclass": 3, "fare": 1e308}, "fare", 422),
        ({"pclass": 3, "fare": 7.25, "age": 0}, "age", 422),
        ({"pclass": 3, "fare": 7.25, "age": 120.5}, "age", 422),
        ({"fare": 7.25}, "pclass", 422),
        ({"pclass": 3, "fare": 7.25, "agee": 3}, "agee", 422),
        ({"passengers": []}, "passengers", 422),
    ],
)
def test_predict_rejects_invalid_fields_naming_them(
    client: TestClient, payload: dict[str, object], field: str, status: int
) -> None:
    response = client.post("/predict", json=payload)
    assert response.status_code == status
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert field in body["detail"]


def test_predict_batch_errors_name_the_index(client: TestClient) -> None:
    response = client.post("/predict", json={"passengers": [{"pclass": 1, "fare": 5}, {"pclass": 1, "fare": -5}]})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "fare", "index": 1, "message": "must be a number in [0, 10000], or null/empty when unknown (got -5)"}
    ]
    assert response.json()["detail"].startswith("passengers[1]: fare:")


def test_predict_limits_batch_and_body_size(model_dir: Path) -> None:
    settings = Settings(model_dir=model_dir, max_batch_size=5, max_body_bytes=2048)
    with TestClient(create_app(settings)) as small:
        six = {"passengers": [{"pclass": 1, "fare": 5}] * 6}
        response = small.post("/predict", json=six)
        assert response.status_code == 413
        assert "over the limit of 5" in response.json()["detail"]
        big = small.post("/predict", content=b" " * 4096, headers={"content-type": "application/json"})
        assert big.status_code == 413
        assert "over the limit of 2048 bytes" in big.json()["detail"]


def kaggle_test_csv_from_project_data(fare_missing_rows: tuple[int, ...]) -> tuple[bytes, list[dict[str, str]]]:
    """A file shaped like Kaggle's test.csv (its columns, no Survived) from data/titanic.csv, some fares blanked."""
    with SHIPPED_CSV_PATH.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = ["PassengerId", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"]
    for i, row in enumerate(rows):
        row["PassengerId"] = str(892 + i)  # the shipped file has no ids; Kaggle's test.csv starts at 892
    for i in fare_missing_rows:
        rows[i]["Fare"] = ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(), rows


def test_predict_test_csv_with_a_missing_fare_answers_every_row_as_a_submission(client: TestClient) -> None:
    body, rows = kaggle_test_csv_from_project_data(fare_missing_rows=(152,))
    headers = {"content-type": "text/csv", "accept": "text/csv"}
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/csv")
    answer = list(csv.reader(io.StringIO(response.text)))
    assert answer[0] == ["PassengerId", "Survived"]
    assert [r[0] for r in answer[1:]] == [row["PassengerId"] for row in rows]
    assert {r[1] for r in answer[1:]} <= {"0", "1"}
    # The submission is the batchnorm model's JSON answer, thresholded.
    as_json = client.post("/predict?model=batchnorm", content=body, headers={"content-type": "text/csv"}).json()
    assert [str(int(p["batchnorm"]["survived"])) for p in as_json["predictions"]] == [r[1] for r in answer[1:]]


def test_predict_missing_fare_uses_the_class_median_listed_in_models_and_says_so(
    client: TestClient, model_dir: Path
) -> None:
    fills = client.get("/models/batchnorm").json()["preprocessing"]["fare_fill"]
    body, rows = kaggle_test_csv_from_project_data(fare_missing_rows=(0, 1, 9))
    predictions = client.post("/predict", content=body, headers={"content-type": "text/csv"}).json()["predictions"]
    for i in (0, 1, 9):
        row = rows[i]
        age = float(row["Age"]) if row["Age"] else None
        explicit = {"pclass": int(row["Pclass"]), "fare": fills[int(row["Pclass"]) - 1], "age": age}
        same = client.post("/predict", json=explicit).json()["predictions"][0]
        assert predictions[i]["filled"] == (["fare", "age"] if age is None else ["fare"])
        assert same.get("filled") == (None if age is not None else ["age"])
        for name in ("batchnorm", "plain"):  # one row in a batch of 891 against one alone: BLAS may round apart
            got, want = predictions[i][name]["survival_probability"], same[name]["survival_probability"]
            assert abs(got - want) <= 1e-12
    complete = [i for i, row in enumerate(rows) if row["Age"] and i not in (0, 1, 9)]
    assert all("filled" not in predictions[i] for i in complete)
    assert tuple(fills) == load_pair(model_dir)["batchnorm"].metadata.preprocessing.fare_fill


def test_predict_kaggle_test_csv_to_submission_csv(client: TestClient, kaggle_test_path: Path) -> None:
    # Kaggle's own file, unchanged: 418 rows, PassengerId 1044 without a Fare.
    body = kaggle_test_path.read_bytes()
    response = client.post(
        "/predict?model=plain", content=body, headers={"content-type": "text/csv", "accept": "text/csv"}
    )
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["PassengerId", "Survived"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(892, 1310)]
    assert {r[1] for r in rows[1:]} <= {"0", "1"}
    # The submission agrees with the JSON answer of the same model.
    as_json = client.post("/predict?model=plain", content=body, headers={"content-type": "text/csv"}).json()
    assert as_json["passenger_ids"][0] == "892"
    survived = [str(int(p["plain"]["survived"])) for p in as_json["predictions"]]
    assert survived == [r[1] for r in rows[1:]]
    assert as_json["predictions"][as_json["passenger_ids"].index("1044")]["filled"] == ["fare"]


def test_predict_csv_answer_needs_passenger_ids(client: TestClient) -> None:
    response = client.post("/predict", json={"pclass": 1, "fare": 5}, headers={"accept": "text/csv"})
    assert response.status_code == 406
    assert "PassengerId" in response.json()["detail"]


def test_health_and_ready(client: TestClient, model_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok", "models": []}
    assert client.get("/ready").json() == {"status": "ready", "models": ["batchnorm", "plain"]}
    # Without its lifespan the app has no models: not ready, and predictions are refused with 503.
    cold = app_client(model_dir)
    assert cold.get("/health").status_code == 200
    assert cold.get("/ready").status_code == 503
    assert cold.post("/predict", json={"pclass": 1, "fare": 5}).status_code == 503


def test_models_describe_architecture_and_training(client: TestClient, model_dir: Path) -> None:
    models = client.get("/models").json()
    assert set(models) == {"batchnorm", "plain"}
    bn = client.get("/models/batchnorm").json()
    assert bn["has_batchnorm"] is True
    assert bn["layers"] == ["Linear(16)", "BatchNorm1d", "ReLU", "Linear(8)", "BatchNorm1d", "ReLU", "Linear(1)"]
    assert bn["preprocessing"]["features"] == ["Pclass", "Fare", "Age"]
    assert bn["preprocessing"]["age_fill"] == load_pair(model_dir)["batchnorm"].metadata.preprocessing.age_fill
    assert bn["hyperparameters"]["learning_rate"] == 0.001
    assert bn["seed"] == 0
    assert len(bn["data"]["sha256"]) == 64
    assert models["plain"]["has_batchnorm"] is False
    assert client.get("/models/other").status_code == 422


def test_metrics_json_reports_both_models(client: TestClient, model_dir: Path) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["vary"] == "Accept"
    body = response.json()
    pair = load_pair(model_dir)
    for name in ("batchnorm", "plain"):
        validation = body["models"][name]["validation"]
        assert validation["accuracy"] == pair[name].metadata.metrics.accuracy
        assert validation["n"] == 179
        for key in ("log_loss", "roc_auc", "precision", "recall", "f1", "brier", "confusion_matrix"):
            assert key in validation
        assert len(body["models"][name]["curves"]["val_accuracy"]) == body["models"][name]["training"]["epochs"]
    assert body["baseline"]["majority_accuracy"] == pytest.approx(110 / 179)
    assert body["study"] is None


def test_metrics_html_for_browsers(client: TestClient) -> None:
    response = client.get("/metrics", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["vary"] == "Accept"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for canvas in ("chart-train-loss", "chart-val-loss", "chart-train-accuracy", "chart-val-accuracy"):
        assert f'id="{canvas}"' in response.text
    assert client.get("/static/chart.umd.min.js").status_code == 200


def test_metrics_include_the_study_when_present(model_dir: Path, tmp_path: Path) -> None:
    from training.study import StudyOptions, run_study, write_study

    copy = tmp_path / "models"
    shutil.copytree(model_dir, copy, symlinks=True)
    study = run_study(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=2), StudyOptions(seeds=(0, 1)))
    with app_client(copy) as c:
        assert c.get("/metrics").json()["study"] is None
        write_study(study, copy)
        body = c.get("/metrics").json()["study"]
        assert body["comparisons"][0]["mean_diff"] == study.comparisons[0].mean_diff
        html = c.get("/metrics", headers={"accept": "text/html"}).text
        assert study.claims[0].claim in html
        (copy / "study.json").write_text("{not json")
        assert c.get("/metrics").json()["study"] is None


def test_prometheus_metrics(client: TestClient) -> None:
    client.post("/predict", json={"passengers": [{"pclass": 1, "fare": 5}] * 3})
    text = client.get("/metrics/prometheus").text
    assert 'http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert 'predictions_total{model="batchnorm"}' in text
    assert 'model_validation_accuracy{model="plain"}' in text


def test_openapi_documents_predict_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    assert "single" in body["application/json"]["examples"]
    assert "Passenger" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200
