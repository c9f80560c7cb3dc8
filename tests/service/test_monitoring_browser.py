"""The dashboard's monitoring section in a real browser, against a server whose window holds drifted traffic."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from support.paths import SHIPPED_CSV_PATH
from test_dashboard_browser import OUTPUT_DIR, browser, server_url  # noqa: F401  (fixtures, shared)

from training.data import load_csv, stratified_split

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser

CANVASES = (
    "chart-monitor-fare",
    "chart-monitor-age",
    "chart-monitor-pclass",
    "chart-monitor-pvalues",
    "chart-monitor-layers",
)


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    """POST JSON, return the JSON answer."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_dashboard_shows_live_vs_training_and_the_drift(server_url: str, browser: object) -> None:  # noqa: F811
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, Chrome)
    dataset = load_csv(SHIPPED_CSV_PATH)
    train_idx, _ = stratified_split(dataset.labels, 0)
    rows = dataset.raw[train_idx][np.random.default_rng(0).integers(0, train_idx.size, 1000)]
    passengers = [
        {"pclass": int(p), "fare": 2 * f, "age": None if np.isnan(a) else a} for p, f, a in rows.tolist()
    ]  # every fare doubled: the fare test must alarm, the others not
    post(f"{server_url}/predict", {"passengers": passengers})
    browser.set_window_size(1280, 2200)
    browser.get(f"{server_url}/metrics")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-monitoring-ready")
    )
    for canvas_id in CANVASES:
        assert browser.find_element(By.ID, canvas_id).get_attribute("data-rendered") == "true", canvas_id
    fare = browser.execute_script(
        "return Chart.getChart(arguments[0]).data.datasets.map(d => d.label + ':' + d.data.length)",
        browser.find_element(By.ID, "chart-monitor-fare"),
    )
    assert fare == ["training:21", "live window:21"]
    # Fares crowd under 30 of a 0-512 range: the Fare chart's axis is logarithmic, Age's stays linear.
    scale_types = "return Chart.getChart(arguments[0]).scales.x.type"
    assert browser.execute_script(scale_types, browser.find_element(By.ID, "chart-monitor-fare")) == "logarithmic"
    assert browser.execute_script(scale_types, browser.find_element(By.ID, "chart-monitor-age")) == "linear"
    summary = browser.find_element(By.ID, "monitoring-summary")
    assert summary.get_attribute("data-drift") == "true"
    assert summary.text.lstrip("\u26a0\ufe0e ").startswith("DRIFT: 1000 of 1000 passengers")
    # The alarm is visible, not plain black text: a red banner, a red frame, and a red badge in the contents bar.
    assert summary.value_of_css_property("background-color") == "rgba(253, 232, 232, 1)"
    assert browser.find_element(By.ID, "monitoring").value_of_css_property("border-top-color") == "rgba(155, 28, 28, 1)"
    badge = browser.find_element(By.ID, "toc-monitoring-state")
    assert (badge.text, badge.get_attribute("data-drift")) == ("DRIFT", "true")
    assert badge.value_of_css_property("background-color") == "rgba(155, 28, 28, 1)"
    table = browser.find_element(By.ID, "monitoring-tests").text
    assert "Fare: ks_2samp" in table
    rows_text = {line.split(":")[0]: line for line in table.splitlines()[1:5]}
    assert rows_text["Fare"].endswith("DRIFT")
    assert rows_text["Pclass"].endswith("no drift")
    alarms = browser.find_elements(By.CSS_SELECTOR, "#monitoring-tests td.alarm")
    assert alarms
    assert {cell.text for cell in alarms} == {"DRIFT"}
    severe = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]  # type: ignore[no-untyped-call]
    assert severe == []
    section = browser.find_element(By.ID, "monitoring")
    browser.execute_script("arguments[0].scrollIntoView()", section)
    OUTPUT_DIR.mkdir(exist_ok=True)
    section.screenshot(str(OUTPUT_DIR / "monitoring.png"))
    assert (OUTPUT_DIR / "monitoring.png").stat().st_size > 10_000


def test_the_contents_bar_reaches_every_section_and_stays_in_view(server_url: str, browser: object) -> None:  # noqa: F811
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, Chrome)
    browser.set_window_size(1280, 900)
    browser.get(f"{server_url}/metrics")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-monitoring-ready")
    )
    links = browser.find_elements(By.CSS_SELECTOR, "#toc a")
    targets = [str(link.get_attribute("href")).rsplit("#", 1)[1] for link in links]
    assert targets == ["metrics", "curves", "confusion", "study", "monitoring", "comparison", "settings"]
    sections = [s.get_attribute("id") for s in browser.find_elements(By.CSS_SELECTOR, "main > section")]
    assert sections == targets  # every section is listed, in page order
    toc = browser.find_element(By.ID, "toc")
    for link, target in zip(links, targets, strict=True):
        link.click()

        def reached(driver: Chrome, script: str = f"return location.hash === '#{target}'") -> bool:
            return bool(driver.execute_script(script))

        WebDriverWait(browser, 5).until(reached)
        top = browser.execute_script(
            "return arguments[0].getBoundingClientRect().top", browser.find_element(By.ID, target)
        )
        bar = browser.execute_script("return arguments[0].getBoundingClientRect()", toc)
        assert 0 <= bar["top"] < 5, f"the contents bar scrolled away ({target}: {bar})"
        # The section starts below the bar, not hidden under it (the last one may not reach the top).
        assert top >= bar["bottom"] - 1 or target == "settings", (target, top, bar)
    OUTPUT_DIR.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(OUTPUT_DIR / "dashboard-top.png"))
