"""The deployment files render, validate and agree with the service they deploy.

Kubernetes: `kubectl kustomize` renders the base and every overlay, `kubernetes-validate --strict` accepts every
rendered object but the KServe InferenceService (no schema of it ships), whose container must equal the base
Deployment's. Then the probes, ports, user, image, settings and trainer flags of the manifests (and of the compose
file) are checked against what the service and the trainer really accept and answer, so none can drift.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.app import app_client
from support.paths import REPO_DIR, need

from service.config import Settings
from service.store.database import sqlite_path, store_url
from training.cli import train_parser

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

KUBE_DIR = REPO_DIR / "deploy" / "kubernetes"
OVERLAYS = sorted(p.parent for p in KUBE_DIR.glob("overlays/*/kustomization.yaml"))
KUSTOMIZATIONS = [KUBE_DIR / "base", *OVERLAYS]
KUBERNETES_VERSION = "1.33"  # the oldest Kubernetes release still maintained upstream when this was written
Manifest = dict[str, Any]


def tool(name: str) -> str:
    """The venv's copy of a command-line tool (installed by the dev extra), else the one on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    need(found is not None, f"`{name}` is not installed (pip install -c constraints.txt -e '.[dev]')")
    assert found is not None
    return found


def render(directory: Path) -> list[Manifest]:
    """`kubectl kustomize DIRECTORY`, parsed."""
    out = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    """Every kustomization, rendered: {"base": [...], "kserve": [...]}."""
    return {directory.name: render(directory) for directory in KUSTOMIZATIONS}


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single object of this kind (and name)."""
    found = [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def api_pod(manifests: list[Manifest]) -> Manifest:
    """The pod spec of the base's API Deployment."""
    spec: Manifest = one(manifests, "Deployment", "titanic-api")["spec"]["template"]["spec"]
    return spec


def dockerfile_stage(target: str) -> str:
    """The text of one stage of the Dockerfile."""
    text = (REPO_DIR / "Dockerfile").read_text()
    match = re.search(rf"^FROM \S+ AS {target}\n(.*?)(?=^FROM |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"the Dockerfile has no stage {target}"
    return match.group(1)


def test_there_are_the_kserve_and_postgres_overlays() -> None:
    assert [p.name for p in OVERLAYS] == ["kserve", "postgres"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_every_rendered_object_but_kserve_validates_strictly(
    directory: Path, rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    objects = [m for m in rendered[directory.name] if not m["apiVersion"].startswith("serving.kserve.io/")]
    assert objects
    files = []
    for i, manifest in enumerate(objects):
        files.append(tmp_path / f"{i}-{manifest['kind']}.yaml")
        files[-1].write_text(yaml.safe_dump(manifest))
    cmd = [tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSION, *map(str, files)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(" passed for resource ") == len(files), out.stdout


def test_the_base_deploys_what_the_issue_asks_for(rendered: dict[str, list[Manifest]]) -> None:
    base = rendered["base"]
    deployment = one(base, "Deployment", "titanic-api")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = api_pod(base)
    [container] = pod["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["topologySpreadConstraints"]
    hpa = one(base, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "titanic-api"
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert one(base, "PodDisruptionBudget")["spec"]["selector"] == deployment["spec"]["selector"]
    service = one(base, "Service", "titanic-api")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {p["name"] for p in container["ports"]}


def test_the_models_volume_is_written_by_the_trainer_and_read_only_in_the_api(
    rendered: dict[str, list[Manifest]],
) -> None:
    base = rendered["base"]
    claim = one(base, "PersistentVolumeClaim")["metadata"]["name"]
    pod = api_pod(base)
    [api_volume] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert api_volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    [api_mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == api_volume["name"]]
    assert api_mount["readOnly"] is True
    job = one(base, "Job")["spec"]["template"]["spec"]
    cron = one(base, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for trainer in (job, cron):
        [volume] = [v for v in trainer["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"]["claimName"] == claim
        [container] = trainer["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert not mount.get("readOnly", False)
        # The trainer's real parser accepts the flags, and it writes where the API reads.
        command = container["command"]
        assert command[:3] == ["python", "-m", "training"]
        args = train_parser().parse_args(command[3:])
        assert args.out == Path(mount["mountPath"]) == Path(api_mount["mountPath"])
    assert train_parser().parse_args(job["containers"][0]["command"][3:]).if_missing is True
    settings = one(base, "ConfigMap")["data"]
    assert Path(settings["MODEL_DIR"]) == Path(api_mount["mountPath"])


def test_the_settings_are_the_services_own_and_valid(rendered: dict[str, list[Manifest]]) -> None:
    """Every variable the manifests and the compose file set is a Settings field with a valid value."""
    fields = {name.upper() for name in Settings.model_fields}
    base = rendered["base"]
    container = api_pod(base)["containers"][0]
    [source] = container["envFrom"]
    config = one(base, "ConfigMap", source["configMapRef"]["name"])["data"]
    environment = {**config, **{e["name"]: e["value"] for e in container.get("env", [])}}
    compose = yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text())["services"]["api"]["environment"]
    for variables in (environment, compose):
        unknown = set(variables) - fields
        assert not unknown, f"not settings of the service: {sorted(unknown)}"
    # Valid values: Settings itself accepts the manifests' values (compose's are `${VAR:-default}` templates).
    Settings(**{k.lower(): v for k, v in environment.items()})


def test_probes_and_port_are_the_services_routes_and_port(rendered: dict[str, list[Manifest]], model_dir: Path) -> None:
    container = api_pod(rendered["base"])["containers"][0]
    [port] = container["ports"]
    api_stage = dockerfile_stage("api")
    assert re.search(r'^CMD \["python", "-m", "service"\]$', api_stage, re.MULTILINE), "the image runs the launcher"
    image_port = re.search(r"\bPORT=(\d+)", api_stage)
    assert image_port, "the api stage sets no PORT"
    assert int(image_port.group(1)) == port["containerPort"]
    assert f"EXPOSE {port['containerPort']}" in api_stage
    assert f"/dev/tcp/127.0.0.1/{port['containerPort']}" in api_stage  # the healthcheck probes that port
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    assert {probe["port"] for probe in probes.values()} == {port["name"]}
    assert probes["readiness"]["path"] == "/ready"
    # The probed paths answer 200 on the real app with models loaded; /ready says so.
    with app_client(model_dir) as client:
        for probe in probes.values():
            assert client.get(probe["path"]).status_code == 200, probe
        assert client.get(probes["readiness"]["path"]).json()["status"] == "ready"


def test_images_and_user_are_the_ones_the_dockerfile_and_compose_build(rendered: dict[str, list[Manifest]]) -> None:
    compose = yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text())["services"]
    built = {svc["build"]["target"]: svc["image"].split(":")[0] for svc in compose.values() if "build" in svc}
    assert set(built) == {"api", "trainer"}
    base = rendered["base"]
    assert api_pod(base)["containers"][0]["image"].split(":")[0] == built["api"]
    for kind in ("Job", "CronJob"):
        manifest = one(base, kind)["spec"]
        pod = (manifest.get("jobTemplate", {}).get("spec") or manifest)["template"]["spec"]
        assert pod["containers"][0]["image"].split(":")[0] == built["trainer"]
        assert pod["securityContext"]["runAsUser"] == api_pod(base)["securityContext"]["runAsUser"]
    uid = re.search(r"useradd .*--uid (\d+)", (REPO_DIR / "Dockerfile").read_text())
    assert uid, "the Dockerfile creates no user with a fixed uid"
    assert int(uid.group(1)) == api_pod(base)["securityContext"]["runAsUser"]


def test_the_kserve_predictor_runs_the_base_container(rendered: dict[str, list[Manifest]]) -> None:
    kserve = rendered["kserve"]
    assert not [m for m in kserve if m["kind"] in {"Deployment", "Service", "HorizontalPodAutoscaler"}]
    isvc = one(kserve, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = isvc["spec"]["predictor"]
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    pod = api_pod(rendered["base"])
    # Image, ports, probes, settings, resources, security and mounts: all equal to the base's container.
    assert {**container, "name": None} == {**pod["containers"][0], "name": None}
    for key in ("volumes", "securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert predictor[key] == pod[key], key
    # The ConfigMap it names is the one the overlay renders (the generated name with its hash).
    assert container["envFrom"][0]["configMapRef"]["name"] == one(kserve, "ConfigMap")["metadata"]["name"]


def test_timeouts_fit_the_services_own(rendered: dict[str, list[Manifest]]) -> None:
    """nginx drops idle upstream connections before the service does; Kubernetes waits out the whole drain."""
    settings = Settings()
    upstream = re.search(
        r"upstream api \{(.*?)\}", (REPO_DIR / "deploy" / "nginx" / "nginx.conf").read_text(), re.DOTALL
    )
    assert upstream, "nginx.conf has no `upstream api` block"
    idle = re.search(r"^\s*keepalive_timeout (\d+)s;", upstream.group(1), re.MULTILINE)
    assert idle, "the upstream block sets no keepalive_timeout"
    assert int(idle.group(1)) < settings.keep_alive_timeout_s
    pod = api_pod(rendered["base"])
    pre_stop = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings.graceful_timeout_s


def image_env(name: str) -> str:
    """A variable the api stage of the Dockerfile sets with ENV."""
    match = re.search(rf"^\s+{name}=(\S+)", dockerfile_stage("api"), re.MULTILINE)
    assert match, f"the api stage sets no {name}"
    return match.group(1)


def test_the_sqlite_store_is_in_a_writable_directory_everywhere(rendered: dict[str, list[Manifest]]) -> None:
    """The image, compose and the base put the SQLite file in a directory the non-root API can write to."""
    image = image_env("STORE_URL")
    parsed = store_url(image)
    assert parsed is not None
    image_dir = sqlite_path(parsed)
    assert image_dir is not None, image
    assert image_dir.is_absolute(), image
    # The directory exists in the image, owned by the API's user (the chown that a new named volume inherits).
    assert re.search(
        rf"mkdir -p .*{image_dir.parent}.* && chown app:app .*{image_dir.parent}", dockerfile_stage("runtime")
    )
    compose = yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text())
    api = compose["services"]["api"]
    assert api["read_only"] is True
    assert api["environment"]["STORE_URL"] == f"${{API_STORE_URL:-{image}}}"
    volumes = dict(volume.split(":", 1) for volume in api["volumes"])
    assert volumes["store"] == str(image_dir.parent)  # a named volume, writable (no :ro)
    assert "store" in compose["volumes"]
    pods = {
        "base": api_pod(rendered["base"]),
        "kserve": one(rendered["kserve"], "InferenceService")["spec"]["predictor"],
    }
    for name, pod in pods.items():
        [container] = pod["containers"]
        settings = one(rendered[name], "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
        assert settings["STORE_URL"] == image
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(image_dir.parent)]
        assert not mount.get("readOnly", False)
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert set(volume) == {"name", "emptyDir"}, volume
        assert container["securityContext"]["readOnlyRootFilesystem"] is True  # the store's mount is the way


POSTGRES_DIR = KUBE_DIR / "overlays" / "postgres"


def test_the_postgres_overlay_takes_store_url_from_a_secret_it_does_not_hold(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    postgres = rendered["postgres"]
    assert not [m for m in postgres if m["kind"] == "Secret"], "the overlay must not ship a Secret"
    [container] = api_pod(postgres)["containers"]
    [variable] = [e for e in container["env"] if e["name"] == "STORE_URL"]
    reference = variable["valueFrom"]["secretKeyRef"]
    # The example Secret: the name and key the overlay reads, valid, and a placeholder, not a password.
    example_file = POSTGRES_DIR / "secret.example.yaml"
    example = yaml.safe_load(example_file.read_text())
    assert (example["kind"], example["metadata"]["name"]) == ("Secret", reference["name"])
    url = store_url(example["stringData"][reference["key"]])
    assert url is not None
    assert url.drivername == "postgresql+psycopg"
    assert url.password == "REPLACE-ME"
    assert example_file.name not in yaml.safe_load((POSTGRES_DIR / "kustomization.yaml").read_text())["resources"]
    out = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(example_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # Everything else is the base's: the same pod but for that one variable, and valid settings.
    base_pod = api_pod(rendered["base"])
    pod = api_pod(postgres)
    env = [e for e in container["env"] if e["name"] != "STORE_URL"]
    assert {**container, "env": env, "envFrom": None} == {**base_pod["containers"][0], "envFrom": None}
    assert {**pod, "containers": None} == {**base_pod, "containers": None}
    settings = one(postgres, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    Settings(**{k.lower(): v for k, v in {**settings, "STORE_URL": str(url)}.items()})
