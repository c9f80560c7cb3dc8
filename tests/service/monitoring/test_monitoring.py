"""Input monitoring through the real app: windows of real requests, GET /monitoring, the gauges, MONITOR=0.

One app serves the session's checkpoints. The window holds 1,000 passengers and every seeded window is one
POST of 1,000 passengers, so each window replaces the previous one entirely.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch
from fastapi.testclient import TestClient
from support.paths import REPO_DIR, SHIPPED_CSV_PATH
from torch import nn

from service.config import Settings
from service.main import create_app
from service.state import state_of
from survival.features import preprocess
from survival.reference import REFERENCE_FILE, read_reference
from survival.runs import save_run
from survival.torch_checkpoint import load_pair
from training.data import load_csv, stratified_split
from training.loop import TrainConfig
from training.run import train_run

WINDOW = 1000
WINDOWS = 200
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@pytest.fixture(scope="module")
def client(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real app (lifespan included) with the default monitoring settings, on the session's checkpoints, and a
    store of its own: the window is the last WINDOW passengers of the run the store holds, so no other test's may
    be among them."""
    store = tmp_path_factory.mktemp("monitoring-store") / "store.db"
    settings = Settings(model_dir=model_dir, monitor_window=WINDOW, store_url=f"sqlite:///{store}")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def training_rows() -> FloatArray:
    """The raw rows of the session run's training split (seed 0), from the shipped CSV."""
    dataset = load_csv(SHIPPED_CSV_PATH)
    train_idx, _ = stratified_split(dataset.labels, 0)
    return dataset.raw[train_idx]


def body(rows: FloatArray) -> bytes:
    """A JSON batch of raw rows (NaN age: null)."""
    passengers = [
        {"pclass": int(p), "fare": float(f), "age": None if np.isnan(a) else float(a)} for p, f, a in rows.tolist()
    ]
    return json.dumps({"passengers": passengers}).encode()


def fare_x2(rows: FloatArray, _rng: np.random.Generator) -> FloatArray:
    """Every fare doubled."""
    rows[:, 1] *= 2
    return rows


def age_plus_10(rows: FloatArray, _rng: np.random.Generator) -> FloatArray:
    """Every known age ten years older."""
    rows[:, 2] += 10
    return rows


def first_class_only(rows: FloatArray, _rng: np.random.Generator) -> FloatArray:
    """Every passenger in first class (fares and ages untouched)."""
    rows[:, 0] = 1
    return rows


def ages_60_percent_missing(rows: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Known ages removed at random until 60 % are missing (the known ages left are a random subset)."""
    known = np.flatnonzero(~np.isnan(rows[:, 2]))
    drop = int(0.6 * rows.shape[0]) - (rows.shape[0] - known.size)
    rows[rng.choice(known, drop, replace=False), 2] = np.nan
    return rows


def window(training_rows: FloatArray, seed: int, change: Callable[..., FloatArray] | None = None) -> FloatArray:
    """WINDOW passengers drawn with replacement from the training rows, then changed."""
    rng = np.random.default_rng(seed)
    rows = training_rows[rng.integers(0, training_rows.shape[0], WINDOW)].copy()
    return change(rows, rng) if change is not None else rows


def monitor(client: TestClient, rows: FloatArray) -> dict[str, Any]:
    """Serve `rows` as one batch, then read GET /monitoring."""
    assert client.post("/predict", content=body(rows), headers={"content-type": "application/json"}).status_code == 200
    response = client.get("/monitoring")
    assert response.status_code == 200
    report: dict[str, Any] = response.json()
    assert report["window"]["size"] == WINDOW
    return report


def feature_drift(report: dict[str, Any]) -> dict[str, bool]:
    """Each feature's verdict."""
    return {f["feature"]: f["drift"] for f in report["features"]}


def test_resampled_training_windows_raise_no_alarm(client: TestClient, training_rows: FloatArray) -> None:
    alarms = features = layers = 0
    for seed in range(WINDOWS):
        report = monitor(client, window(training_rows, seed))
        assert report["drift"] is not None
        alarms += report["drift"]
        features += any(feature_drift(report).values())
        layers += any(layer["drift"] for layer in report["activations"])
    print(f"false alarms in {WINDOWS} windows: any {alarms}, features {features}, layers {layers}")
    assert alarms <= 0.05 * WINDOWS


@pytest.mark.parametrize(
    ("change", "feature"),
    [(fare_x2, "fare"), (age_plus_10, "age"), (first_class_only, "pclass"), (ages_60_percent_missing, "age_missing")],
)
def test_a_changed_feature_raises_its_alarm_and_no_other(
    client: TestClient, training_rows: FloatArray, change: Callable[..., FloatArray], feature: str
) -> None:
    hits = 0
    others: dict[str, int] = {}
    for seed in range(WINDOWS):
        verdicts = feature_drift(monitor(client, window(training_rows, seed, change)))
        hits += verdicts.pop(feature)
        for name, drift in verdicts.items():
            others[name] = others.get(name, 0) + drift
    print(f"{change.__name__}: {feature} detected in {hits}/{WINDOWS}, others {others}")
    assert hits >= 0.95 * WINDOWS
    assert all(count <= 0.05 * WINDOWS for count in others.values())


@pytest.mark.parametrize("change", [None, fare_x2, ages_60_percent_missing])
def test_p_values_equal_scipy_on_the_same_rows(
    client: TestClient, training_rows: FloatArray, change: Callable[..., FloatArray] | None
) -> None:
    rows = window(training_rows, 7, change)
    got = {f["feature"]: f for f in monitor(client, rows)["features"]}
    fare, age, pclass = rows[:, 1], rows[:, 2], rows[:, 0]
    train_age = training_rows[:, 2]
    expected = {
        "fare": scipy.stats.ks_2samp(fare, training_rows[:, 1]).pvalue,
        "age": scipy.stats.ks_2samp(age[~np.isnan(age)], train_age[~np.isnan(train_age)]).pvalue,
        "pclass": scipy.stats.chi2_contingency(
            [[(pclass == c).sum() for c in (1, 2, 3)], [(training_rows[:, 0] == c).sum() for c in (1, 2, 3)]]
        ).pvalue,
        # A two-proportion z-test is the chi-square test of the 2 x 2 table without continuity correction.
        "age_missing": scipy.stats.chi2_contingency(
            [[np.isnan(age).sum(), (~np.isnan(age)).sum()], [np.isnan(train_age).sum(), (~np.isnan(train_age)).sum()]],
            correction=False,
        ).pvalue,
    }
    for name, p_value in expected.items():
        assert got[name]["p_value"] == pytest.approx(p_value, rel=1e-9, abs=1e-300), name


@pytest.mark.parametrize("variant", ["batchnorm", "plain"])
def test_v2_inference_feeds_the_same_window_as_predict(
    client: TestClient, training_rows: FloatArray, variant: str
) -> None:
    """The same passengers sent through the Open Inference Protocol (NaN: unknown age) give the same report."""
    rows = window(training_rows, 11, ages_60_percent_missing)
    through_predict = monitor(client, rows)
    assert feature_drift(monitor(client, window(training_rows, 12)))["age_missing"] is False  # other rows in between
    tensor = {"name": "features", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    request = json.dumps({"inputs": [tensor]})  # an unknown age as NaN, as Python's json and tritonclient write it
    answer = client.post(f"/v2/models/{variant}/infer", content=request, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    report = client.get("/monitoring").json()
    assert report["window"]["size"] == WINDOW
    assert report["features"] == through_predict["features"]
    assert report["activations"] == through_predict["activations"]
    assert feature_drift(report)["age_missing"] is True


def hooked_inputs(model: nn.Module, hooked: type[nn.Module], x: FloatArray) -> list[FloatArray]:
    """The inputs of every `hooked` module of `model` on model inputs `x`, captured by forward hooks."""
    seen: list[FloatArray] = []
    handles = [
        m.register_forward_hook(lambda _m, i, _o: seen.append(i[0].numpy().copy()))
        for m in model.modules()
        if isinstance(m, hooked)
    ]
    with torch.no_grad():
        model(torch.as_tensor(x))
    for handle in handles:
        handle.remove()
    return seen


def test_layer_z_equals_a_torch_computation_of_the_batchnorm_inputs(
    client: TestClient, model_dir: Path, training_rows: FloatArray
) -> None:
    """Hooks on the eval-mode torch model: BN's inputs (or ReLU's) on the training rows and on the window."""
    rows = window(training_rows, 11, fare_x2)
    report = monitor(client, rows)
    for name, ckpt in load_pair(model_dir).items():
        model = ckpt.model.double().eval()
        hooked = nn.BatchNorm1d if ckpt.metadata.model.batchnorm else nn.ReLU

        prep = ckpt.metadata.preprocessing
        train_inputs, window_inputs = (
            hooked_inputs(model, hooked, preprocess(raw, prep)) for raw in (training_rows, rows)
        )
        for depth, (train_in, window_in) in enumerate(zip(train_inputs, window_inputs, strict=True), 1):
            z = (window_in.mean(axis=0) - train_in.mean(axis=0)) / np.sqrt(train_in.var(axis=0) / WINDOW)
            layer = next(a for a in report["activations"] if a["model"] == name and a["layer"] == f"hidden{depth}")
            np.testing.assert_allclose(layer["z"], z, rtol=1e-6, atol=1e-6)
            assert layer["drift"] is True
            assert layer["units_out_of_bounds"] == int((np.abs(z) > layer["z_threshold"]).sum())


def test_invalid_requests_are_not_in_the_window_and_filled_values_count_as_missing(
    client: TestClient, training_rows: FloatArray
) -> None:
    rows = window(training_rows, 3)
    before = monitor(client, rows)
    assert client.post("/predict", json={"pclass": 4, "fare": 7.25, "age": 22}).status_code == 422
    assert client.post("/predict", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    batch = {"passengers": [{"pclass": 1, "fare": 5}, {"pclass": 1, "fare": -1}]}  # one bad passenger: all refused
    assert client.post("/predict", json=batch).status_code == 422
    after = client.get("/monitoring").json()
    assert after["features"] == before["features"]  # not one row of the refused requests went in
    # Single passengers without an age: each is missing, not the training median the model is given.
    for _ in range(10):
        assert client.post("/predict", json={"pclass": 3, "fare": 7.25}).status_code == 200
    missing = next(f for f in client.get("/monitoring").json()["features"] if f["feature"] == "age_missing")
    assert missing["n_window"] == WINDOW
    # The ten oldest passengers left the window, ten without an age came in.
    expected = (np.isnan(rows[10:, 2]).sum() + 10) / WINDOW
    assert missing["distribution"]["window"][0] == pytest.approx(expected)
    # A missing fare (filled for the model) is left out of the Fare test, not counted as the fill value.
    for _ in range(5):
        assert client.post("/predict", json={"pclass": 3, "age": 30}).status_code == 200
    fare = next(f for f in client.get("/monitoring").json()["features"] if f["feature"] == "fare")
    assert fare["n_window"] == WINDOW - 5


def test_a_small_window_reports_not_enough_data(model_dir: Path, training_rows: FloatArray, tmp_path: Path) -> None:
    # A store of its own: the window is what the store holds of the run, and other tests served the same run.
    settings = Settings(model_dir=model_dir, monitor_min_window=50, store_url=f"sqlite:///{tmp_path}/store.db")
    with TestClient(create_app(settings)) as fresh:
        empty = fresh.get("/monitoring").json()
        assert empty["window"]["size"] == 0
        assert empty["window"]["since"] is None
        assert empty["drift"] is None
        fresh.post("/predict", content=body(training_rows[:49]), headers={"content-type": "application/json"})
        few = fresh.get("/monitoring").json()
        assert few["window"]["size"] == 49
        assert few["drift"] is None
        assert all(f["p_value"] is None and f["drift"] is None for f in few["features"])
        assert all(a["drift"] is None and a["largest_z"] is None for a in few["activations"])
        fresh.post("/predict", json={"pclass": 3, "fare": 7.25, "age": 22})
        enough = fresh.get("/monitoring").json()
        assert enough["window"]["size"] == 50
        assert enough["drift"] is not None
        assert all(f["p_value"] is not None for f in enough["features"] if f["feature"] != "age")


def test_prometheus_gauges_follow_the_report(client: TestClient, training_rows: FloatArray) -> None:
    report = monitor(client, window(training_rows, 5, first_class_only))
    text = client.get("/metrics/prometheus").text
    assert f"monitoring_window_passengers {float(WINDOW)}" in text
    assert "monitoring_drift 1.0" in text
    assert 'monitoring_feature_drift{feature="pclass"} 1.0' in text
    assert 'monitoring_feature_drift{feature="fare"} 0.0' in text
    p_fare = next(f["p_value"] for f in report["features"] if f["feature"] == "fare")
    line = next(row for row in text.splitlines() if row.startswith('monitoring_feature_p_value{feature="fare"}'))
    assert float(line.split()[-1]) == pytest.approx(p_fare)
    assert 'monitoring_layer_max_abs_z{layer="hidden1",model="batchnorm"}' in text


def test_monitor_off_is_reported_and_costs_nothing(model_dir: Path) -> None:
    with TestClient(create_app(Settings(model_dir=model_dir, monitor=False))) as off:
        assert off.post("/predict", json={"pclass": 3, "fare": 7.25, "age": 22}).status_code == 200
        report = off.get("/monitoring").json()
        assert report == {
            "enabled": False,
            "alpha": None,
            "window": None,
            "drift": None,
            "reference_error": None,
            "features": [],
            "activations": [],
        }
        assert "monitoring_" not in off.get("/metrics/prometheus").text
        assert state_of(off.app).lifecycle.monitor is None


def test_the_reference_travels_with_the_run(model_dir: Path) -> None:
    for name in ("batchnorm", "plain"):
        variant_dir = model_dir / "current" / name
        metadata = json.loads((variant_dir / "metadata.json").read_text())
        assert REFERENCE_FILE in metadata["artifacts"]  # hash-checked at every load
        reference = read_reference(variant_dir / REFERENCE_FILE)
        assert reference.features.n_rows == metadata["data"]["n_train"]
        assert [layer.units for layer in reference.layers] == list(metadata["model"]["hidden"])


@pytest.mark.parametrize("on", [False, True])
@pytest.mark.system
def test_the_service_imports_neither_scipy_nor_torch_with_monitoring_on_or_off(model_dir: Path, on: bool) -> None:
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from service.config import Settings\n"
        "from service.main import create_app\n"
        f"with TestClient(create_app(Settings(model_dir={str(model_dir)!r}, monitor={on}))) as client:\n"
        "    rows = [{'pclass': 1 + i % 3, 'fare': 5.0 + i, 'age': 1.0 + i % 70} for i in range(150)]\n"
        "    assert client.post('/predict', json={'passengers': rows}).status_code == 200\n"
        "    report = client.get('/monitoring').json()\n"
        # With monitoring on, every test ran (a verdict, not 'not enough data'): scipy was not needed for it.
        f"    assert (report['drift'] is not None) is {on}, report\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'torch', 'pandas', 'sklearn'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_DIR)
    assert result.stdout.split()[-1] == "[]"


def save_new_run(model_dir: Path, seed: int, epochs: int) -> str:
    """Train and save another run into `model_dir` (flipping `current`); its run id."""
    result = train_run(load_csv(SHIPPED_CSV_PATH), TrainConfig(seed=seed, epochs=epochs))
    save_run(model_dir, result.run_id, result.checkpoint_payload())
    return result.run_id


def wait_for_run(client: TestClient, run_id: str) -> dict[str, Any]:
    """GET /monitoring until it compares with `run_id` (the poller swapped), at most 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        report: dict[str, Any] = client.get("/monitoring").json()
        if report["window"]["run_id"] == run_id:
            return report
        time.sleep(0.05)
    raise AssertionError(f"the service did not swap to run {run_id} within 30 s")


def test_hot_swap_keeps_the_window_for_the_same_training_rows_and_resets_it_for_others(
    model_dir: Path, tmp_path: Path, training_rows: FloatArray
) -> None:
    served = tmp_path / "models"
    shutil.copytree(model_dir, served, symlinks=True)
    with TestClient(create_app(Settings(model_dir=served, reload_poll_s=0.05))) as swapping:
        rows = window(training_rows, 1, fare_x2)
        before = monitor(swapping, rows)
        # Same data, same seed: the same training split, so the same feature reference; other weights.
        same_split = wait_for_run(swapping, save_new_run(served, seed=0, epochs=2))
        assert same_split["window"]["size"] == WINDOW
        assert same_split["window"]["reset_at"] == before["window"]["reset_at"]
        assert same_split["features"] == before["features"]
        z_before = {(a["model"], a["layer"]): a["z"] for a in before["activations"]}
        z_after = {(a["model"], a["layer"]): a["z"] for a in same_split["activations"]}
        assert z_after != z_before  # the layers are recomputed with the new weights, against their new reference
        assert same_split["drift"] is True
        # Another seed: another training split, another reference: the window starts again.
        other_split = wait_for_run(swapping, save_new_run(served, seed=1, epochs=2))
        assert other_split["window"]["size"] == 0
        assert other_split["window"]["reset_at"] > before["window"]["reset_at"]
        assert other_split["drift"] is None
        assert monitor(swapping, window(training_rows, 2))["window"]["run_id"] == other_split["window"]["run_id"]
