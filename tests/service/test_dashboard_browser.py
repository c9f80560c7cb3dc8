"""The dashboard in a real browser: headless Chromium (Debian's) loads it from a running server."""

from __future__ import annotations

import json
import math
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.paths import REPO_DIR, SHIPPED_CSV_PATH, need
from support.servers import running

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMEDRIVER_PATH = Path("/usr/bin/chromedriver")
OUTPUT_DIR = REPO_DIR / "test-output"
CANVASES = ("chart-train-loss", "chart-val-loss", "chart-train-accuracy", "chart-val-accuracy")


# A data file name that would end or confuse the page's embedded JSON if it were pasted in unescaped.
HOSTILE_NAME = "<!--<script>.csv"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn server (one worker) on loopback serving a pair and a small real study (every part), both
    trained on a copy of the data named `HOSTILE_NAME`, recording into a prediction store of its own."""
    from survival.runs import save_run
    from training.data import load_csv
    from training.loop import TrainConfig
    from training.run import train_run
    from training.study import StudyOptions, run_study, write_study

    data_path = tmp_path_factory.mktemp("data") / HOSTILE_NAME
    shutil.copyfile(SHIPPED_CSV_PATH, data_path)
    dataset = load_csv(data_path)
    served = tmp_path_factory.mktemp("served") / "models"
    result = train_run(dataset, TrainConfig(epochs=3))
    save_run(served, result.run_id, result.checkpoint_payload())
    options = StudyOptions(seeds=(0, 1), sweep=True, regularization=True, ics=True)
    write_study(run_study(dataset, TrainConfig(epochs=3), options), served)
    store = tmp_path_factory.mktemp("store") / "predictions.db"
    with running(tmp_path_factory.mktemp("server"), served, STORE_URL=f"sqlite:///{store}") as server:
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by selenium (never a downloaded browser)."""
    need(
        CHROMIUM_PATH.exists() and CHROMEDRIVER_PATH.exists(), "Debian's chromium and chromium-driver are not installed"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM_PATH)
    # Flags for a closed, root-run sandbox: no network chatter, no GPU, a fresh profile.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2200",
        # Offline: every request that is not to loopback fails (a closed proxy, names resolve to nothing),
        # so a page that works here needs nothing from the internet.
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER_PATH)))
    try:
        yield driver
    finally:
        driver.quit()


def test_dashboard_renders_both_models_charts_without_console_errors(server_url: str, browser: object) -> None:
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, Chrome)
    browser.get(f"{server_url}/metrics")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts-ready"))
    for canvas_id in CANVASES:
        canvas = browser.find_element(By.ID, canvas_id)
        assert canvas.get_attribute("data-rendered") == "true"
        assert canvas.size["width"] > 200
        # Chart.js registers every chart it drew; each curve chart must hold one line per model.
        labels = browser.execute_script(
            "return Chart.getChart(arguments[0]).data.datasets.map(d => d.label + ':' + d.data.length)", canvas
        )
        assert len(labels) == 2
        assert labels[0].startswith("with BatchNorm:")
        assert labels[1].startswith("without BatchNorm:")
        assert int(labels[0].split(":")[1]) > 0
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-study-ready"))
    # The study's learning-rate plots: the four arms, one point per learning rate, with error bars.
    for canvas_id in ("chart-sweep-adam", "chart-sweep-sgd"):
        canvas = browser.find_element(By.ID, canvas_id)
        assert canvas.get_attribute("data-rendered") == "true"
        points = browser.execute_script(
            "return Chart.getChart(arguments[0]).data.datasets.map(d => d.data.filter(v => v !== null).length)", canvas
        )
        assert points == [3, 3, 3, 3]
    # Accuracy per epoch for the four arms, each a mean line and a band (two invisible edges).
    curves = browser.find_element(By.ID, "chart-study-curves")
    assert curves.get_attribute("data-rendered") == "true"
    lengths = browser.execute_script(
        "return Chart.getChart(arguments[0]).data.datasets.map(d => d.data.length)", curves
    )
    assert lengths == [3] * 12
    assert browser.find_element(By.ID, "chart-study-threshold").get_attribute("data-rendered") == "true"
    study = browser.find_element(By.ID, "study").text
    assert "On raw inputs over 2 resamples" in study
    assert "BN allows higher learning rates" in study
    # The hostile file name arrived as text: in the study's provenance and inside the parsed JSON.
    assert HOSTILE_NAME in browser.find_element(By.ID, "study-match").text
    assert "Matches the served run" in browser.find_element(By.ID, "study-match").text
    embedded = browser.execute_script("return JSON.parse(document.getElementById('dashboard-data').textContent)")
    assert embedded["study"]["data"]["file_name"] == HOSTILE_NAME
    assert embedded["models"]["plain"]["training"]["data_file"] == HOSTILE_NAME
    table = browser.find_element(By.ID, "metrics").text
    assert "with BatchNorm" in table
    assert "without BatchNorm" in table
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    severe = [e for e in log if e["level"] in ("SEVERE", "ERROR")]
    assert severe == []
    OUTPUT_DIR.mkdir(exist_ok=True)
    browser.save_screenshot(str(OUTPUT_DIR / "dashboard.png"))
    browser.set_window_size(390, 2400)  # a phone's width
    browser.save_screenshot(str(OUTPUT_DIR / "dashboard-phone.png"))
    wide = browser.execute_script("return document.documentElement.scrollWidth > window.innerWidth + 1")
    assert wide is False, "the page scrolls sideways at phone width"
    assert (OUTPUT_DIR / "dashboard.png").stat().st_size > 10_000


def test_docs_list_the_operations_offline_under_the_dashboard_csp(server_url: str, browser: object) -> None:
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from service.routes.metrics import DASHBOARD_CSP

    assert isinstance(browser, Chrome)
    with urllib.request.urlopen(f"{server_url}/docs", timeout=10) as response:
        assert response.headers["Content-Security-Policy"] == DASHBOARD_CSP
    browser.set_window_size(1280, 2200)
    browser.get(f"{server_url}/docs")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) > 10)
    paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/predict", "/metrics", "/v2/health/ready", "/v2/models/{name}/infer"} <= paths
    # Everything the page loaded came from the app itself.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded
    assert [url for url in loaded if not url.startswith(server_url)] == []
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    assert [e for e in log if e["level"] in ("SEVERE", "ERROR")] == []  # a CSP violation would be one
    OUTPUT_DIR.mkdir(exist_ok=True)
    browser.save_screenshot(str(OUTPUT_DIR / "docs.png"))


def call(url: str, body: object | None = None, headers: dict[str, str] | None = None) -> Any:
    """GET (or POST JSON) and return the parsed JSON answer (an HTTP error fails the test with its body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise AssertionError(f"{url}: {exc.code} {exc.read()!r}") from None


def load_section(browser: Any, url: str) -> Any:
    """The dashboard at `url`, once static/comparison.js has drawn the live comparison."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1280, 2200)
    browser.get(f"{url}/metrics")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-comparison-ready")
    )
    return browser.find_element(By.ID, "comparison")


def numbers(text: str) -> list[float]:
    """Every number in a cell's text ("[-6.1, +9.5]" -> [-6.1, 9.5]; "1,234" -> [1234])."""
    return [float(n.replace(",", "")) for n in re.findall(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def table(browser: Any, table_id: str) -> dict[str, list[str]]:
    """A table's body rows by their first cell: {"Accuracy": ["0.713", ...]}."""
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent))",
        table_id,
    )
    return {row[0]: row[1:] for row in rows}


def test_the_live_comparison_shows_the_stores_figures(server_url: str, browser: object) -> None:
    """No outcomes yet, then predictions and their real outcomes: the section shows what GET /comparison says,
    and its accuracies, scores and paired counts equal ones computed here from the answers and the outcomes."""
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By

    from training.data import load_csv

    assert isinstance(browser, Chrome)
    before = call(f"{server_url}/comparison")
    assert before["n_labelled"] == 0  # this module's own store: no test before this one fed outcomes back
    section = load_section(browser, server_url)
    summary = browser.find_element(By.ID, "comparison-summary")
    assert summary.text == before["verdict"]
    assert summary.text.startswith("No outcomes yet")
    assert (section.get_attribute("data-state"), summary.get_attribute("data-state")) == ("empty", "empty")
    assert browser.find_element(By.ID, "toc-comparison-state").text == "no outcomes"
    assert not browser.find_element(By.ID, "comparison-labelled").is_displayed()

    # 300 real passengers, answered by both models; the outcomes of the first 240 come back.
    dataset = load_csv(SHIPPED_CSV_PATH)
    rows, survived = dataset.raw[:300].tolist(), dataset.labels[:300].astype(int).tolist()
    passengers = [{"pclass": int(p), "fare": f, "age": None if math.isnan(a) else a} for p, f, a in rows]
    answer = call(f"{server_url}/predict", {"passengers": passengers}, {"X-Request-ID": "dashboard-comparison"})
    predictions = answer["predictions"]
    assert [p["id"] for p in predictions] == [f"dashboard-comparison/{i}" for i in range(300)]
    labelled = 240
    outcomes = [
        {"prediction_id": p["id"], "survived": s} for p, s in zip(predictions[:labelled], survived, strict=False)
    ]
    assert call(f"{server_url}/feedback", {"outcomes": outcomes})["labelled"] == labelled

    # Independent figures, from the answers and the outcomes alone.
    truth = survived[:labelled]
    right = {
        m: [p[m]["survived"] == bool(s) for p, s in zip(predictions, truth, strict=False)]
        for m in ("batchnorm", "plain")
    }
    expected: dict[str, dict[str, float]] = {}
    for m in ("batchnorm", "plain"):
        probs = [p[m]["survival_probability"] for p in predictions[:labelled]]
        clipped = [min(max(q, 1e-15), 1 - 1e-15) for q in probs]
        expected[m] = {
            "Accuracy": sum(right[m]) / labelled,
            "Log-loss (lower is better)": -sum(math.log(q if s else 1 - q) for q, s in zip(clipped, truth, strict=True))
            / labelled,
            "Brier score (lower is better)": sum((q - s) ** 2 for q, s in zip(probs, truth, strict=True)) / labelled,
        }
    pairs = list(zip(right["batchnorm"], right["plain"], strict=True))
    counts = {
        "paired-both-right": pairs.count((True, True)),
        "paired-only-batchnorm": pairs.count((True, False)),
        "paired-only-plain": pairs.count((False, True)),
        "paired-both-wrong": pairs.count((False, False)),
    }
    difference = (counts["paired-only-batchnorm"] - counts["paired-only-plain"]) / labelled

    # A worker computes the comparison at most once a second: the report may be that old.
    deadline = time.monotonic() + 10
    while (report := call(f"{server_url}/comparison"))["n_labelled"] != labelled and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (report["n_predictions"], report["n_labelled"]) == (300, labelled)
    section = load_section(browser, server_url)
    summary = browser.find_element(By.ID, "comparison-summary")
    assert summary.text == report["verdict"]  # verbatim
    state = "shown" if report["more_accurate"] else "unshown"
    badge = f"{report['more_accurate']} better" if report["more_accurate"] else "not shown"
    assert (section.get_attribute("data-state"), browser.find_element(By.ID, "toc-comparison-state").text) == (
        state,
        badge,
    )
    assert "300 predictions recorded, 240 with an outcome; both models answer /predict" in section.text
    models = table(browser, "comparison-models")
    for label, (bn, plain) in (
        (label, (expected["batchnorm"][label], expected["plain"][label])) for label in expected["plain"]
    ):
        shown = [float(cell) for cell in models[label][:2]]
        assert shown == pytest.approx([bn, plain], abs=5e-4), label
    ece = [float(cell) for cell in models["ECE (lower is better)"][:2]]
    assert ece == pytest.approx([report["models"][m]["ece"] for m in ("batchnorm", "plain")], abs=5e-4)
    for cell_id, n in counts.items():
        assert browser.find_element(By.ID, cell_id).text == str(n), cell_id
    differences = table(browser, "comparison-difference")
    assert numbers(differences["Accuracy difference"][0]) == pytest.approx([100 * difference], abs=0.05)
    paired = report["paired"]
    for label, key in (
        ("95 % confidence sequence (anytime-valid)", "confidence_sequence"),
        ("95 % fixed-n interval", "interval"),
    ):
        assert numbers(differences[label][0]) == pytest.approx([100 * v for v in paired[key]], abs=0.05), label
    assert numbers(differences["McNemar exact p"][0]) == pytest.approx([paired["mcnemar_p"]], rel=0.05)
    # The charts hold the report's own points: the reliability bins of each model, and the two intervals.
    reliability = browser.execute_script(
        "return Chart.getChart(arguments[0]).data.datasets.map(d => d.data.map(p => [p.x, p.y]))",
        browser.find_element(By.ID, "chart-comparison-reliability"),
    )
    for m, drawn in zip(("batchnorm", "plain"), reliability, strict=False):
        bins = report["models"][m]["reliability"]
        assert drawn == [[b["mean_probability"], b["observed_rate"]] for b in bins], m  # the same doubles
    segments = browser.execute_script(
        "return Chart.getChart(arguments[0]).data.datasets.slice(0, 2).map(d => d.data.map(p => p.x))",
        browser.find_element(By.ID, "chart-comparison-difference"),
    )
    assert segments == [[100 * v for v in paired["confidence_sequence"]], [100 * v for v in paired["interval"]]]
    estimated = table(browser, "comparison-estimated")
    for m, label in (("batchnorm", "with BatchNorm"), ("plain", "without BatchNorm")):
        n_unlabelled, expected_accuracy, *_, realised = estimated[label]
        assert int(n_unlabelled) == report["estimated"][m]["n_unlabelled"] == 300 - labelled
        assert float(expected_accuracy) == pytest.approx(report["estimated"][m]["expected_accuracy"], abs=5e-4)
        assert float(realised) == pytest.approx(expected[m]["Accuracy"], abs=5e-4)
    severe = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]  # type: ignore[no-untyped-call]
    assert severe == []
    browser.execute_script("arguments[0].scrollIntoView()", section)
    OUTPUT_DIR.mkdir(exist_ok=True)
    section.screenshot(str(OUTPUT_DIR / "comparison.png"))
    assert (OUTPUT_DIR / "comparison.png").stat().st_size > 10_000


def test_the_live_comparison_says_when_the_store_is_off(model_dir: Path, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By

    assert isinstance(browser, Chrome)
    with running(tmp_path, model_dir, STORE_URL="none") as server:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/comparison", timeout=30)
        refused.value.close()
        assert refused.value.code == 404
        section = load_section(browser, server.url)
        summary = browser.find_element(By.ID, "comparison-summary")
        assert summary.text.startswith("The prediction store is off (STORE_URL=none)")
        assert (section.get_attribute("data-state"), browser.find_element(By.ID, "toc-comparison-state").text) == (
            "off",
            "off",
        )
        assert not browser.find_element(By.ID, "comparison-labelled").is_displayed()
        assert not browser.find_element(By.ID, "comparison-estimate").is_displayed()
        # The one console error: the browser's own line for the 404 that says the store is off.
        log = browser.get_log("browser")  # type: ignore[no-untyped-call]
        severe = [e["message"] for e in log if e["level"] in ("SEVERE", "ERROR")]
        assert all("/comparison" in line and "404" in line for line in severe), severe
