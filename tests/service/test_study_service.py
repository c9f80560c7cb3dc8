"""The study and the checkpoint metadata as the service reads them: a bad file is refused when read (one clear
message), /metrics renders whatever is valid and never answers 500, and the page embeds data safely."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from support.app import app_client
from support.paths import SHIPPED_CSV_PATH

from service.dashboard.render import embed_json
from survival.checkpoint import METADATA_FILE, CheckpointError
from survival.study import STUDY_FILE, StudyReport
from survival.torch_checkpoint import load_pair
from training.data import load_csv
from training.loop import TrainConfig
from training.study import StudyOptions, run_study, write_study

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def study() -> StudyReport:
    """A real study on the shipped data with the trainer's default settings, at 2 seeds and 2 epochs."""
    return run_study(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=2), StudyOptions(seeds=(0, 1)))


@pytest.fixture
def served(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's checkpoints."""
    copy = tmp_path / "models"
    shutil.copytree(model_dir, copy, symlinks=True)
    return copy


def _study_text(study: StudyReport, **changes: object) -> str:
    data = json.loads(study.model_dump_json())
    data.update(changes)
    return json.dumps(data)


def test_a_valid_study_renders_and_names_its_run(served: Path, study: StudyReport) -> None:
    # The session's pair trained 4 epochs, this study 2: the page must say the study does not describe it.
    write_study(study, served)
    with app_client(served) as client:
        body = client.get("/metrics").json()
        assert body["study"]["settings"]["seeds"] == [0, 1]
        page = client.get("/metrics", headers=HTML).text
    assert "This study does not describe the served run" in page
    assert "epochs 2 (served: 4)" in page
    assert escape_free(study.verdict) in page


def test_a_study_of_the_served_run_says_which_arm_the_models_are(served: Path) -> None:
    from support.paths import FIXTURE_EPOCHS

    matching = run_study(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=FIXTURE_EPOCHS), StudyOptions(seeds=(0, 1)))
    write_study(matching, served)
    with app_client(served) as client:
        page = client.get("/metrics", headers=HTML).text
    assert "Matches the served run" in page
    assert "the served models are the raw-input arm, seed 0, of this study" in page


def test_the_page_names_layers_and_states_power_tests_and_holm(served: Path) -> None:
    options = StudyOptions(seeds=(0, 1), ics=True)
    write_study(run_study(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=2), options), served)
    with app_client(served) as client:
        page = client.get("/metrics", headers=HTML).text
    # Santurkar's ICS per named layer: the output layer is not "hidden layer 3".
    assert "output layer" in page
    assert "hidden layer 2" in page
    assert "hidden layer 3" not in page
    assert 'id="study-power"' in page
    assert "smallest true difference this design detects" in page
    for head in ("<th>test</th>", "<th>p</th>", "<th>Holm p</th>"):
        assert head in page
    for canvas in ("chart-study-curves", "chart-study-train-loss", "chart-study-threshold", "chart-study-reliability"):
        assert f'id="{canvas}"' in page


def escape_free(text: str) -> str:
    """`text` as html.escape writes it (the verdict holds quotes)."""
    from html import escape

    return escape(text)


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("a missing arm", lambda t: t.replace('"plain/raw":', '"plain/raw_":', 1), "are not the arms of its scalings"),
        ("NaN", lambda t: t.replace('"verdict":', '"x": NaN, "verdict":', 1), "NaN is not a JSON number"),
        ("Infinity", lambda t: t.replace('"study":', '"study": Infinity, "_":', 1), "Infinity is not a JSON number"),
        ("deep nesting", lambda t: "[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ("no arms at all", lambda t: t.replace('"arms":', '"arms": {}, "_arms":', 1), "invalid study results"),
    ],
)
def test_a_bad_study_file_is_refused_and_metrics_still_answer(
    served: Path, study: StudyReport, name: str, mutate: object, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert callable(mutate)
    (served / STUDY_FILE).write_text(mutate(_study_text(study)))
    with app_client(served) as client, caplog.at_level(logging.WARNING):
        json_answer = client.get("/metrics")
        html_answer = client.get("/metrics", headers=HTML)
    assert json_answer.status_code == 200, name
    assert json_answer.json()["study"] is None
    assert html_answer.status_code == 200
    assert "Not run yet" in html_answer.text or "refused" in html_answer.text
    assert any(re.search(message, r.getMessage()) for r in caplog.records), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["metrics"].update(confusion_matrix=[[1, 2, 3], [4, 5, 6], [7, 8, 9]]), "metrics.confusion_matrix"),
        (lambda m: m["metrics"].update(confusion_matrix=[[1, 2]]), "metrics.confusion_matrix"),
        (lambda m: m["metrics"].update(accuracy="NaN"), "metrics.accuracy: not a finite number"),
        (lambda m: m["curves"]["val_loss"].append("-inf"), r"curves.val_loss.\d+: not a finite number"),
    ],
)
def test_bad_checkpoint_metrics_stop_loading(served: Path, change: object, message: str) -> None:
    assert callable(change)
    meta_path = served / "current" / "plain" / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=rf"plain/{METADATA_FILE}: field {message}"):
        load_pair(served)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_checkpoint_metadata_stop_loading(served: Path, literal: str) -> None:
    meta_path = served / "current" / "batchnorm" / METADATA_FILE
    text = re.sub(r'"accuracy": [0-9.e-]+', f'"accuracy": {literal}', meta_path.read_text(), count=1)
    meta_path.write_text(text)
    with pytest.raises(CheckpointError, match=rf"batchnorm/{METADATA_FILE}: not valid JSON"):
        load_pair(served)


def test_embedded_json_cannot_end_or_confuse_the_script_block() -> None:
    hostile = {"file": "<!--<script>.csv", "end": "</script><script>alert(1)</script>", "amp": "&lt; & >"}
    text = embed_json(hostile)
    assert not set(text) & {"<", ">", "&"}
    assert json.loads(text) == hostile
    with pytest.raises(ValueError, match="JSON compliant"):
        embed_json({"x": float("nan")})
