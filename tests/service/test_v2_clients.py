"""The Open Inference Protocol routes through the real clients: tritonclient over HTTP to a real uvicorn process,
and open-inference-openapi (the protocol's generated client) in process. Answers must equal /predict's exactly."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.app import app_client
from support.paths import SHIPPED_CSV_PATH
from support.servers import running

from survival.features import FloatArray
from training.data import load_csv

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

MODELS = ("batchnorm", "plain")


@pytest.fixture(scope="module")
def server_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn server on loopback serving the session's checkpoints."""
    with running(tmp_path_factory.mktemp("v2-server"), model_dir) as server:
        yield server.url


@pytest.fixture(scope="module")
def passengers() -> FloatArray:
    """All 891 training passengers (177 of them without an age, NaN)."""
    raw = load_csv(SHIPPED_CSV_PATH).raw
    assert np.isnan(raw[:, 2]).sum() > 100
    return raw


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST a JSON body) and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def predict_probabilities(url: str, raw: FloatArray, model: str) -> FloatArray:
    """What POST /predict?model=... answers for these passengers."""
    rows = [{"pclass": int(p), "fare": f, "age": None if np.isnan(a) else a} for p, f, a in raw.tolist()]
    answer = http_json(f"{url}/predict?model={model}", {"passengers": rows})
    return np.array([row[model]["survival_probability"] for row in answer["predictions"]])


def served_version(url: str, model: str) -> str:
    """The version GET /models/{name} reports."""
    version: str = http_json(f"{url}/models/{model}")["version"]
    return version


@pytest.fixture(scope="module")
def triton(server_url: str) -> Iterator[Any]:
    """tritonclient's HTTP client, pointed at the server."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=server_url.removeprefix("http://"), network_timeout=30)
    try:
        yield client
    finally:
        client.close()


def test_tritonclient_health_readiness_and_metadata(triton: Any, server_url: str) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    server = triton.get_server_metadata()
    assert server["name"] == "titanic-bn-service"
    # The installed package's version, as /openapi.json says too (it once said a made-up 1.0.0).
    assert (
        server["version"]
        == metadata.version("titanic-bn-service")
        == http_json(f"{server_url}/openapi.json")["info"]["version"]
    )
    assert "binary_tensor_data" in server["extensions"]
    for model in MODELS:
        version = served_version(server_url, model)
        assert triton.is_model_ready(model)
        assert triton.is_model_ready(model, model_version=version)
        assert not triton.is_model_ready(model, model_version="000000000000")
        meta = triton.get_model_metadata(model)
        assert meta["name"] == model
        assert meta["versions"] == [version]
        assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 3]}]
        assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
            ("survival_probability", "FP64"),
            ("survived", "BOOL"),
        ]
        assert triton.get_model_metadata(model, model_version=version) == meta
    assert not triton.is_model_ready("resnet50")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_features_equals_predict_exactly(
    triton: Any, server_url: str, passengers: FloatArray, binary: bool
) -> None:
    import tritonclient.http as httpclient

    for model in MODELS:
        features = httpclient.InferInput("features", list(passengers.shape), "FP64")
        features.set_data_from_numpy(passengers, binary_data=binary)
        outputs = [
            httpclient.InferRequestedOutput("survival_probability", binary_data=binary),
            httpclient.InferRequestedOutput("survived", binary_data=binary),
        ]
        result = triton.infer(model, [features], outputs=outputs, request_id=f"req-{model}")
        probs = result.as_numpy("survival_probability")
        assert probs.dtype == np.float64
        assert probs.shape == (891,)
        expected = predict_probabilities(server_url, passengers, model)
        assert np.array_equal(probs, expected)  # exactly, not approximately
        assert np.array_equal(result.as_numpy("survived"), expected >= 0.5)
        response = result.get_response()
        assert response["id"] == f"req-{model}"
        assert response["model_version"] == served_version(server_url, model)
        # binary outputs travel after the JSON; JSON outputs inline
        assert all(("data" in o) != binary for o in response["outputs"])


def test_tritonclient_default_outputs_come_back_binary(triton: Any, server_url: str, passengers: FloatArray) -> None:
    import tritonclient.http as httpclient

    features = httpclient.InferInput("features", [5, 3], "FP64")
    features.set_data_from_numpy(passengers[:5])
    result = triton.infer("plain", [features])  # no outputs named: tritonclient asks for all, as binary
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    assert np.array_equal(
        result.as_numpy("survival_probability"), predict_probabilities(server_url, passengers[:5], "plain")
    )


def test_tritonclient_infer_three_columns_with_mixed_datatypes(
    triton: Any, server_url: str, passengers: FloatArray
) -> None:
    import tritonclient.http as httpclient

    pclass = httpclient.InferInput("Pclass", [891], "INT64")
    pclass.set_data_from_numpy(passengers[:, 0].astype(np.int64))
    fare = httpclient.InferInput("Fare", [891], "FP64")
    fare.set_data_from_numpy(passengers[:, 1], binary_data=False)
    age = httpclient.InferInput("Age", [891], "FP64")
    age.set_data_from_numpy(passengers[:, 2])
    result = triton.infer("batchnorm", [pclass, fare, age])
    assert np.array_equal(
        result.as_numpy("survival_probability"), predict_probabilities(server_url, passengers, "batchnorm")
    )


def test_tritonclient_sees_errors_with_their_status_and_message(triton: Any, passengers: FloatArray) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    rows = passengers[:3].copy()
    rows[1, 1] = -5.0  # a negative fare
    features = httpclient.InferInput("features", [3, 3], "FP64")
    features.set_data_from_numpy(rows)
    with pytest.raises(InferenceServerException) as bad_value:
        triton.infer("batchnorm", [features])
    assert bad_value.value.status() == "422"
    assert (
        bad_value.value.message()
        == "row 1: Fare: must be a number in [0, 10000], or null/empty when unknown (got -5.0)"
    )
    with pytest.raises(InferenceServerException) as unknown:
        triton.infer("batchnorm", [features], model_version="000000000000")
    assert unknown.value.status() == "404"
    assert "no version '000000000000'" in unknown.value.message()
    wrong = httpclient.InferInput("features", [3], "FP64")
    wrong.set_data_from_numpy(passengers[:3, 0])
    with pytest.raises(InferenceServerException) as shape:
        triton.infer("plain", [wrong])
    assert shape.value.status() == "400"
    assert "expected [N, 3]" in shape.value.message()


@pytest.fixture(scope="module")
def open_inference(model_dir: Path) -> Iterator[tuple[Any, TestClient]]:
    """open-inference-openapi's client, in process: its httpx client is the app's TestClient."""
    from open_inference.openapi.client import OpenInferenceClient

    with app_client(model_dir) as test_client:
        # Starlette's TestClient is an httpx2.Client, with the request API of the httpx.Client this client expects.
        client = OpenInferenceClient(base_url="http://testserver", httpx_client=test_client)  # type: ignore[arg-type]
        yield client, test_client


def test_open_inference_openapi_client(open_inference: tuple[Any, TestClient], passengers: FloatArray) -> None:
    from open_inference.openapi.core.api_error import ApiError
    from open_inference.openapi.types.inference_request import InferenceRequest

    client, test_client = open_inference
    client.check_server_liveness()
    client.check_server_readiness()
    assert "binary_tensor_data" in client.read_server_metadata().extensions
    # Strict JSON (httpx refuses NaN, this client refuses null) cannot say "age unknown": known ages only here.
    known = passengers[~np.isnan(passengers[:, 2])]
    for model in MODELS:
        meta = client.read_model_metadata(model)
        (version,) = meta.versions
        assert client.read_model_version_metadata(model, version).versions == [version]
        client.check_model_readiness(model)
        client.check_model_version_readiness(model, version)
        with pytest.raises(ApiError) as missing:
            client.check_model_version_readiness(model, "v0")
        assert missing.value.status_code == 404
        request = InferenceRequest.parse_obj(
            {
                "id": "oip",
                "inputs": [
                    {"name": "features", "shape": list(known.shape), "datatype": "FP64", "data": known.tolist()}
                ],
            }
        )
        answer = client.model_version_infer(model, version, request=request)
        assert answer.id == "oip"
        assert answer.model_version == version
        probability = next(o for o in answer.outputs if o.name == "survival_probability")
        rows = [{"pclass": int(p), "fare": f, "age": a} for p, f, a in known.tolist()]
        expected = test_client.post(f"/predict?model={model}", json={"passengers": rows}).json()["predictions"]
        assert probability.data.__root__ == [row[model]["survival_probability"] for row in expected]
    with pytest.raises(ApiError) as bad:
        client.model_infer(
            "plain",
            request=InferenceRequest.parse_obj(
                {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [[4, 7.25, 22]]}]}
            ),
        )
    assert bad.value.status_code == 422
    assert bad.value.body == {"error": "row 0: Pclass: must be 1, 2 or 3 (got 4.0)"}
