"""The dashboard in a real browser: headless Chromium (Debian's) loads it from a running server."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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
    trained on a copy of the data named `HOSTILE_NAME`."""
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
    with running(tmp_path_factory.mktemp("server"), served) as server:
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
