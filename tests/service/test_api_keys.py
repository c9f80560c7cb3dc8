"""API keys: off by default; with keys, 401/403 where they are missing or lack the scope, probes open."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Final

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from support.app import app_client
from support.servers import HOST, launch, running
from test_workers import value

from service.auth import KeyRing
from service.config import Settings, SettingsError
from service.main import create_app

DATA_KEY: Final = "data-key-0123456789abcdef"
OTHER_DATA_KEY: Final = "data-key-fedcba9876543210"
ADMIN_KEY: Final = "admin-key-0123456789abcdef"
SINGLE: Final = b'{"pclass": 3, "fare": 7.25, "age": 22}'
JSON: Final = {"content-type": "application/json"}


def keyed_app(model_dir: Path, tmp_path: Path, **settings: object) -> TestClient:
    """A client of an app with two data keys (one from a file) and an admin key."""
    key_file = tmp_path / "keys"
    key_file.write_text(f"# data keys\n{DATA_KEY}\n\n{OTHER_DATA_KEY}\n", encoding="utf-8")
    config = Settings(
        model_dir=model_dir,
        api_keys_file=key_file,
        admin_api_keys=SecretStr(ADMIN_KEY),
        **settings,  # type: ignore[arg-type]
    )
    return TestClient(create_app(config))


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for `key`."""
    return {"Authorization": f"Bearer {key}"}


def test_without_keys_everything_is_open_and_there_is_no_admin_route(model_dir: Path) -> None:
    with app_client(model_dir) as client:
        assert client.post("/predict", content=SINGLE, headers=JSON).status_code == 200
        assert client.get("/models").status_code == 200
        assert client.post("/admin/reload", headers=bearer(ADMIN_KEY)).status_code == 404


def test_data_routes_need_a_valid_key(model_dir: Path, tmp_path: Path) -> None:
    with keyed_app(model_dir, tmp_path) as client:
        missing = client.post("/predict", content=SINGLE, headers=JSON)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "API key" in missing.json()["detail"]
        wrong = client.get("/models", headers=bearer("not-a-key-at-all-0000"))
        assert wrong.status_code == 401
        assert "www-authenticate" in wrong.headers
        assert client.get("/models", headers={"Authorization": f"Basic {DATA_KEY}"}).status_code == 401
        for key in (DATA_KEY, OTHER_DATA_KEY, ADMIN_KEY):
            assert client.post("/predict", content=SINGLE, headers={**JSON, **bearer(key)}).status_code == 200
        assert client.get("/models/plain", headers={"X-API-Key": DATA_KEY}).status_code == 200


def test_probes_and_docs_stay_open(model_dir: Path, tmp_path: Path) -> None:
    with keyed_app(model_dir, tmp_path) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("need", [True, False])
def test_metrics_and_dashboard_need_a_key_as_configured(model_dir: Path, tmp_path: Path, need: bool) -> None:
    with keyed_app(model_dir, tmp_path, metrics_need_key=need) as client:
        for path in ("/metrics", "/metrics/prometheus"):
            assert client.get(path).status_code == (401 if need else 200)
            assert client.get(path, headers=bearer(DATA_KEY)).status_code == 200
        assert client.get("/models").status_code == 401


def test_admin_routes_need_the_admin_scope(model_dir: Path, tmp_path: Path) -> None:
    with keyed_app(model_dir, tmp_path) as client:
        assert client.post("/admin/reload").status_code == 401
        forbidden = client.post("/admin/reload", headers=bearer(DATA_KEY))
        assert forbidden.status_code == 403
        assert "admin" in forbidden.json()["detail"]


def test_auth_failures_are_counted_by_reason(model_dir: Path, tmp_path: Path) -> None:
    with keyed_app(model_dir, tmp_path, metrics_need_key=False) as client:
        client.get("/models")
        client.get("/models")
        client.get("/models", headers=bearer("not-a-key-at-all-0000"))
        client.post("/admin/reload", headers=bearer(DATA_KEY))
        client.get("/models", headers=bearer(DATA_KEY))
        text = client.get("/metrics/prometheus").text
    assert value(text, "auth_failures_total", reason="missing") == 2
    assert value(text, "auth_failures_total", reason="invalid") == 1
    assert value(text, "auth_failures_total", reason="not_admin") == 1
    assert value(text, "http_requests_total", method="GET", route="/models", status="401") == 3


def test_keys_are_kept_as_digests_only(model_dir: Path, tmp_path: Path) -> None:
    keys = KeyRing.from_settings(Settings(model_dir=model_dir, api_keys=SecretStr(f"{DATA_KEY}, {OTHER_DATA_KEY}")))
    assert len(keys.data) == 2
    assert not keys.admin
    assert all(len(d) == 32 and DATA_KEY.encode() not in d for d in keys.data)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"api_keys": SecretStr("tiny-key")}, "API_KEYS: 1 key(s) shorter than 16"),
        ({"admin_api_keys_file": Path("/nonexistent/keys")}, "ADMIN_API_KEYS_FILE='/nonexistent/keys'"),
    ],
)
def test_unusable_keys_are_refused_at_start_without_echoing_them(
    model_dir: Path, settings: dict[str, object], named: str
) -> None:
    with pytest.raises(SettingsError) as error:
        KeyRing.from_settings(Settings(model_dir=model_dir, **settings))  # type: ignore[arg-type]
    assert named in str(error.value)
    assert "tiny-key" not in str(error.value)


def launcher_stderr(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the launcher on a missing model directory (it stops before binding): (status, stderr)."""
    server = launch(tmp_path, {"MODEL_DIR": str(tmp_path / "no-models"), **env})
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    return server.process.returncode, server.stderr.read_text()


@pytest.mark.system
def test_the_launcher_warns_when_an_open_address_has_no_keys(tmp_path: Path) -> None:
    status, stderr = launcher_stderr(tmp_path / "open", {"HOST": "0.0.0.0"})
    assert status == 1
    assert "warning: no API keys are set and HOST=0.0.0.0 is not a loopback address" in stderr
    _, stderr = launcher_stderr(tmp_path / "keyed", {"HOST": "0.0.0.0", "API_KEYS": DATA_KEY})
    assert "warning" not in stderr
    assert DATA_KEY not in stderr
    _, stderr = launcher_stderr(tmp_path / "local", {"HOST": "127.0.0.1"})
    assert "warning" not in stderr
    status, stderr = launcher_stderr(tmp_path / "short", {"API_KEYS": "tiny-key"})
    assert status == 2
    assert "tiny-key" not in stderr


@pytest.mark.system
def test_tritonclient_needs_a_key_for_v2_and_is_answered_with_one(model_dir: Path, tmp_path: Path) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    with running(tmp_path, model_dir, API_KEYS=DATA_KEY) as server:
        client = httpclient.InferenceServerClient(url=f"{HOST}:{server.port}", network_timeout=30)
        try:
            features = httpclient.InferInput("features", [1, 3], "FP64")
            features.set_data_from_numpy(np.array([[3.0, 7.25, 22.0]]))
            with pytest.raises(InferenceServerException, match="API key"):
                client.infer("plain", [features])
            assert not client.is_server_ready()  # a 401, as for every data route
            assert client.is_server_ready(headers=bearer(DATA_KEY))
            result = client.infer("plain", [features], headers=bearer(DATA_KEY))
            predicted = server.request("POST", "/predict?model=plain", SINGLE, {**JSON, **bearer(DATA_KEY)})
            expected = json.loads(predicted.body)["predictions"][0]["plain"]["survival_probability"]
            assert result.as_numpy("survival_probability").tolist() == [expected]
        finally:
            client.close()
