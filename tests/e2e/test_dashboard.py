"""The dashboard at `/` in a real browser (Debian's Chromium, headless, driven by
Selenium through Debian's chromedriver) against the live API and worker.

The page trains a model through its form, follows the job's event stream until
the progress bar is full and the loss curve has a point per epoch, then
predicts one sample through its form and shows the decoded class. Opened
afresh, it shows the newest job's curves without a click, lists the model's
versions with their labels, moves a label, and downloads an export (fetched
with the key, saved by the browser). A search job's trials show as a table
that sorts on a header click and shows parameters as text, with one curve per
trial. Screenshots of the whole page are left in $FITSERVE_ARTIFACTS_DIR
(default: test-artifacts/ in the repository).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options as ChromeOptions
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.datasets import load_iris

from tests.conftest import API_KEY
from tests.e2e.conftest import Live
from tests.e2e.search_records import (
    BEST,
    LEARNING_RATE,
    MARKUP,
    OPTIMIZER,
    RANK_ORDER,
    running_search,
    store_finished_folds,
    store_finished_search,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REPOSITORY = Path(__file__).parents[2]
ARTIFACTS = Path(os.environ.get("FITSERVE_ARTIFACTS_DIR") or REPOSITORY / "test-artifacts")
MODEL = "dashboard-iris"
EPOCHS = 50
# Iris repeated, one sample per batch: on this 2-core machine the worker takes
# ~2 s to start the job and ~1 s to fit it, so the page, following the job
# from when it is queued, reads the epochs off the stream in several parts.
REPEAT = 60
SPEC: dict[str, Any] = {
    "input_shape": [4],
    "layers": [
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
    "fit": {"epochs": EPOCHS, "batch_size": 1, "validation_split": 0.2},
    "seed": 5,
}
SETOSA = [5.1, 3.5, 1.4, 0.2]
WAIT_S = 180.0
QUICK_EPOCHS = 5  # the second test's job: its curves only need to be there
FINAL_STATES = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        pytest.fail(
            f"The dashboard test needs Debian's Chromium and its driver; missing: {missing}. "
            "Install them with `apt-get install -y chromium chromium-driver` (.ci/run does).",
            pytrace=False,
        )
    options = ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which downloads drivers) never runs.
    driver = webdriver.Chrome(options=options, service=ChromeService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_dashboard_trains_follows_and_predicts(live: Live, browser: WebDriver) -> None:
    for path in ("/", "/static/dashboard.js", "/static/dashboard.css"):
        assert requests.get(live.url(path), timeout=10).status_code == 200, path  # no key
    dataset, classes = upload_iris(live)
    open_with_key(browser, live, dataset)

    job_id = train_through_the_form(browser, dataset)
    progress_seen = follow_to_the_end(browser, job_id)
    curves = by_id(browser, "curves")
    history = curves.get_attribute("data-point-history") or "0"
    counts = [int(count) for count in history.split(",")]
    # Drawn as the epochs arrived: the point count only grew, up to one per epoch.
    assert counts == sorted(set(counts)) and counts[-1] == EPOCHS and len(counts) >= 2, counts
    assert int(curves.get_attribute("data-epoch-events") or 0) >= 1
    loss = browser.find_element(By.CSS_SELECTOR, '[data-testid="chart-loss"]')
    drawn = {line.get_attribute("data-testid"): line.get_attribute("data-points")
             for line in loss.find_elements(By.CSS_SELECTOR, "polyline")}  # fmt: skip
    assert drawn == {"series-train": str(EPOCHS), "series-val": str(EPOCHS)}
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="chart-accuracy"]')
    row = f'tr[data-job-id="{job_id}"][data-state="succeeded"] [role="progressbar"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the job listed as done")
    assert browser.find_element(By.CSS_SELECTOR, row).get_attribute("aria-valuenow") == "100"

    label, probabilities = predict_through_the_form(browser, SETOSA)
    assert label in classes, (label, classes)
    assert list(probabilities) == classes
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-3)
    assert max(probabilities, key=lambda name: probabilities[name]) == label
    api = live.http.post(live.url(f"/v1/models/{MODEL}:predict"), json={"instances": [SETOSA]})
    assert api.json()["labels"] == [label]

    screenshot = save_screenshot(browser)
    print(f"dashboard screenshot: {screenshot}; progress bar seen at {progress_seen} %")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_dashboard_opens_on_the_newest_job_and_manages_labels_and_exports(
    live: Live, browser: WebDriver, tmp_path: Path
) -> None:
    dataset, _ = upload_iris(live)
    quick = {**SPEC, "fit": {"epochs": QUICK_EPOCHS, "batch_size": 32}}
    numbers: list[int] = []
    while len(numbers) < 2:  # two versions at least (one more if the first test ran)
        body = {"model": MODEL, "spec": quick, "dataset": dataset}
        submitted = live.http.post(live.url("/v1/jobs"), json=body)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert live.wait_for_job(job_id)["state"] == "succeeded"
        listing = live.http.get(live.url("/v1/models")).json()["models"]
        numbers = sorted(next(entry["versions"] for entry in listing if entry["name"] == MODEL))

    # Opened afresh (the key from the URL's fragment): the newest job, unclicked.
    browser.get("about:blank")  # else only the fragment changes: no new page
    browser.get(live.url(f"/#key={API_KEY}"))
    detail, curves = by_id(browser, "job-detail"), by_id(browser, "curves")
    wait_for(browser, lambda _: detail.get_attribute("data-job-id") == job_id, "the newest job")
    wait_for(browser, lambda _: curves.get_attribute("data-points") == str(QUICK_EPOCHS),
             "its curves")  # fmt: skip
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="chart-loss"] polyline')

    # The model's versions, newest first, each with its downloads.
    open_model(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, '[data-testid="version-row"]')
    assert [row.get_attribute("data-version") for row in rows] == [str(v) for v in numbers[::-1]]
    for row in rows:
        formats = [button.get_attribute("data-format") for button in
                   row.find_elements(By.CSS_SELECTOR, '[data-testid="export-button"]')]  # fmt: skip
        assert formats == ["keras", "saved_model", "onnx"]

    # A label pointed at the newest version, then moved to the first.
    for version in (numbers[-1], numbers[0]):
        move_label(browser, "stable", version)
    labels = live.http.get(live.url(f"/v1/models/{MODEL}/labels"))
    assert labels.json() == {"labels": {"stable": numbers[0]}}, labels.text
    chip = f'tr[data-version="{numbers[0]}"] [data-testid="model-label"][data-label="stable"]'
    assert browser.find_elements(By.CSS_SELECTOR, chip)
    listed = f'li[data-model="{MODEL}"] [data-label="stable"][data-version="{numbers[0]}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, listed), "the label listed")
    history = live.http.get(live.url(f"/v1/models/{MODEL}/labels/stable")).json()["history"]
    moves = [(move["from"], move["to"]) for move in history]
    assert (None, numbers[-1]) in moves and (numbers[-1], numbers[0]) in moves, history

    # The export, fetched with the key and saved: the bytes the API serves.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})  # fmt: skip
    button = (f'tr[data-version="{numbers[0]}"] [data-testid="export-button"]'
              '[data-format="keras"]')  # fmt: skip
    browser.find_element(By.CSS_SELECTOR, button).click()
    status = by_id(browser, "export-status")
    wait_for(browser, lambda _: status.get_attribute("data-state") in ("done", "failed"),
             "the export fetched")  # fmt: skip
    assert status.get_attribute("data-state") == "done", by_id(browser, "export-error").text
    filename = str(status.get_attribute("data-filename"))
    saved = downloads / filename
    wait_for(browser, lambda _: saved.is_file() and not list(downloads.glob("*.crdownload")),
             f"{filename} saved")  # fmt: skip
    served = live.http.get(live.url(f"/v1/models/{MODEL}/versions/{numbers[0]}/export"),
                           params={"format": "keras"})  # fmt: skip
    assert served.status_code == 200, served.text
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(served.content).digest()
    assert filename.endswith(".keras"), filename

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_dashboard_shows_a_search_s_trials_ranked_sortable_and_escaped(
    live: Live, browser: WebDriver
) -> None:
    job_id = store_finished_search(live, "dashboard-search")
    browser.get("about:blank")
    browser.get(live.url(f"/#key={API_KEY}"))
    row = f'tr[data-job-id="{job_id}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the search listed")
    browser.find_element(By.CSS_SELECTOR, row).click()
    rows_shown = '#trials-body [data-testid="trial-row"]'
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows_shown)) == 5,
             "its five trials")  # fmt: skip
    assert by_id(browser, "curves").find_elements(By.CSS_SELECTOR, '[data-testid="chart-trials"]')

    # Ranked by val_loss, lowest first: the stopped trial after the finished ones.
    assert trial_order(browser) == RANK_ORDER
    best = browser.find_element(By.CSS_SELECTOR, f'{rows_shown}[data-trial="{BEST}"]')
    assert "best" in (best.get_attribute("class") or "").split()
    assert best.find_elements(By.CSS_SELECTOR, '[data-testid="best-trial"]')
    assert [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, '#trials-head th')] == [
        "rank", "trial", "learning_rate", "name", "seed", "val_loss", "loss", "state", "epochs",
    ]  # fmt: skip
    rate_header = f'#trials-head th[data-key="param:{LEARNING_RATE}"]'
    rate_title = browser.find_element(By.CSS_SELECTOR, rate_header).get_attribute("title")
    assert rate_title == LEARNING_RATE  # the label is its last segment
    score = best.find_element(By.CSS_SELECTOR, 'td[data-key="metric:val_loss"]')
    assert score.text == "0.3 ± 0.02"
    assert score.get_attribute("title") == "val_loss per fold: 0.28, 0.32"

    # A parameter's text is shown as text: no element made of it.
    name = best.find_element(By.CSS_SELECTOR, f'td[data-key="param:{OPTIMIZER}"]')
    assert name.text == MARKUP
    assert not browser.find_elements(By.CSS_SELECTOR, "#trials-body b")

    # A header click sorts by its column; a second click the other way.
    sort_by = f'#trials-head button[data-key="param:{LEARNING_RATE}"]'
    by_rate = [3, 4, 1, 0, 2]  # the learning rates: 0.0002, 0.0007, 0.005, 0.02, 0.09
    browser.find_element(By.CSS_SELECTOR, sort_by).click()
    wait_for(browser, lambda d: trial_order(d) == by_rate, "sorted by learning rate")
    sorted_as = browser.find_element(By.CSS_SELECTOR, rate_header).get_attribute("aria-sort")
    assert sorted_as == "ascending"
    browser.find_element(By.CSS_SELECTOR, sort_by).click()
    wait_for(browser, lambda d: trial_order(d) == by_rate[::-1], "and the other way")
    browser.find_element(By.CSS_SELECTOR, '#trials-head button[data-key="metric:val_loss"]').click()
    # The stopped trial scored lowest; the failed one, without a score, comes last.
    wait_for(browser, lambda d: trial_order(d) == [4, 1, 0, 2, 3], "sorted by val_loss")

    # One curve per trial, the best one emphasized; a hovered row picks out its own.
    chart = browser.find_element(By.CSS_SELECTOR, '[data-testid="chart-trials"]')
    groups = {group.get_attribute("data-trial"): group
              for group in chart.find_elements(By.CSS_SELECTOR, "g.trial")}  # fmt: skip
    assert sorted(groups) == ["0", "1", "2", "3", "4"]
    assert "best" in (groups["1"].get_attribute("class") or "")
    points = {trial: group.find_element(By.CSS_SELECTOR, "polyline").get_attribute("data-points")
              for trial, group in groups.items()}  # fmt: skip
    assert points == {"0": "6", "1": "6", "2": "6", "3": "0", "4": "3"}
    hovered = browser.find_element(By.CSS_SELECTOR, f'{rows_shown}[data-trial="2"]')
    ActionChains(browser).move_to_element(hovered).perform()
    svg = chart.find_element(By.CSS_SELECTOR, "svg")
    wait_for(browser, lambda _: "focused" in (svg.get_attribute("class") or ""), "a curve picked")
    emphasized = chart.find_elements(By.CSS_SELECTOR, "g.trial.emphasized")
    assert [group.get_attribute("data-trial") for group in emphasized] == ["2"]

    print(f"search screenshot: {save_screenshot(browser, 'dashboard-search.png')}")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_dashboard_follows_a_running_search_curve_by_curve(live: Live, browser: WebDriver) -> None:
    with running_search(live, "dashboard-live-search") as search:
        browser.get("about:blank")
        browser.get(live.url(f"/#key={API_KEY}"))
        row = f'tr[data-job-id="{search.id}"]'
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the search listed")
        browser.find_element(By.CSS_SELECTOR, row).click()
        wait_for(browser, lambda d: trial_order(d) == [0, 1, 2], "its queued trials")

        search.start()
        curves = by_id(browser, "curves")
        for sent in (2, 5):
            # Each entry's keys appended once, however often the stream sends it.
            search.epochs(sent - search.sent)
            expected = dict.fromkeys((0, 1, 2), sent)
            wait_for(browser, lambda _, expected=expected: trial_points(browser) == expected,
                     f"{sent} epochs of each trial's curve")  # fmt: skip
            assert curves.get_attribute("data-points") == str(sent)
        rows = trial_table(browser)
        assert [row["state"] for row in rows] == ["running"] * 3
        # The table shows each trial's latest value while it trains.
        for row in rows:
            curve = search.curves[f"{row['trial']}:val_loss"]
            assert row["cells"]["metric:val_loss"] == f"{curve[4]:.4g}", row

        search.epochs(1)
        search.succeed()
        detail = by_id(browser, "job-detail")
        wait_for(browser, lambda _: detail.get_attribute("data-state") == "succeeded", "its end")
        best = f'#trials-body tr.best[data-trial="{BEST}"] [data-testid="best-trial"]'
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, best), "the best marked")
        assert trial_points(browser) == {0: 6, 1: 6, 2: 6}
        assert [row["state"] for row in trial_table(browser)] == ["succeeded"] * 3

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_dashboard_shows_a_fold_job_s_folds(live: Live, browser: WebDriver) -> None:
    job_id = store_finished_folds(live, "dashboard-folds")
    browser.get("about:blank")
    browser.get(live.url(f"/#key={API_KEY}"))
    row = f'tr[data-job-id="{job_id}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the job listed")
    browser.find_element(By.CSS_SELECTOR, row).click()
    wait_for(browser, lambda d: trial_order(d) == [0], "its one trial")
    (only,) = trial_table(browser)
    assert only["cells"] == {
        "rank": "1 best", "trial": "0", "metric:val_loss": "0.3 ± 0.02",
        "metric:loss": "0.2 ± 0.02", "state": "succeeded", "epochs": "6",
    }  # fmt: skip
    # Its curve, the folds' mean, over each fold's.
    assert trial_points(browser) == {0: 6}
    folds = browser.find_elements(By.CSS_SELECTOR, '[data-testid="chart-trials"] g.fold')
    assert [fold.get_attribute("data-fold") for fold in folds] == ["f1", "f2"]
    save_screenshot(browser, "dashboard-folds.png")


# Read in one script: the page redraws the table and chart as events arrive,
# so elements found one call earlier may be gone.
TRIAL_TABLE_JS = """
return [...document.querySelectorAll('#trials-body [data-testid="trial-row"]')].map((row) => ({
  trial: Number(row.dataset.trial), state: row.dataset.state,
  cells: Object.fromEntries([...row.cells].map((cell) => [cell.dataset.key, cell.textContent])),
}));
"""
TRIAL_POINTS_JS = """
return [...document.querySelectorAll('[data-testid="chart-trials"] polyline.trial')]
  .map((line) => ["data-trial", "data-points"].map((name) => Number(line.getAttribute(name))));
"""


def trial_table(browser: WebDriver) -> list[dict[str, Any]]:
    """The trials table's rows, in order: trial, state and each cell's text by column."""
    return list(browser.execute_script(TRIAL_TABLE_JS))


def trial_order(browser: WebDriver) -> list[int]:
    return [row["trial"] for row in trial_table(browser)]


def trial_points(browser: WebDriver) -> dict[int, int]:
    """How many points each trial's curve has."""
    return {trial: points for trial, points in browser.execute_script(TRIAL_POINTS_JS)}


def open_model(browser: WebDriver) -> None:
    model_row = f'li[data-testid="model-row"][data-model="{MODEL}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, model_row), "the model listed")
    browser.find_element(By.CSS_SELECTOR, model_row).click()
    detail = by_id(browser, "model-detail")
    wait_for(browser, lambda _: detail.get_attribute("data-model") == MODEL, "its metadata")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="version-row"]'),
             "its versions")  # fmt: skip


def move_label(browser: WebDriver, label: str, version: int) -> None:
    """Point `label` at `version` through the form; wait for the page to say so."""
    name = by_id(browser, "label-name")
    name.clear()
    name.send_keys(label)
    Select(by_id(browser, "label-version")).select_by_value(str(version))
    by_id(browser, "label-submit").click()
    result = by_id(browser, "label-result")
    wait_for(browser, lambda _: result.get_attribute("data-version") == str(version)
             or by_id(browser, "label-error").text, f"{label} at version {version}")  # fmt: skip
    error = by_id(browser, "label-error")
    assert error.get_attribute("hidden") is not None, error.text
    chip = f'tr[data-version="{version}"] [data-testid="model-label"][data-label="{label}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, chip), f"{label} shown")


def upload_iris(live: Live) -> tuple[str, list[str]]:
    iris = load_iris()
    names = [str(name) for name in iris.target_names]
    body = {
        "x": iris.data.tolist() * REPEAT,
        "y": [names[index] for index in iris.target] * REPEAT,
    }
    response = live.http.post(live.url("/v1/datasets"), json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"]), names


def open_with_key(browser: WebDriver, live: Live, dataset: str) -> None:
    browser.get(live.url("/"))
    by_id(browser, "api-key").send_keys(API_KEY)
    by_id(browser, "save-key").click()
    connection = by_id(browser, "connection")
    wait_for(browser, lambda _: connection.get_attribute("data-state") == "ok", "the API answering")
    option = f'#train-dataset option[value="{dataset}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, option), "the dataset listed")


def train_through_the_form(browser: WebDriver, dataset: str) -> str:
    """Submit the job; the page selects it and follows its events."""
    by_id(browser, "train-model").send_keys(MODEL)
    Select(by_id(browser, "train-dataset")).select_by_value(dataset)
    spec = by_id(browser, "train-spec")
    browser.execute_script("arguments[0].value = arguments[1]", spec, json.dumps(SPEC, indent=2))
    by_id(browser, "train-submit").click()
    result = by_id(browser, "train-result")
    job_id = wait_for(browser, lambda _: result.get_attribute("data-job-id"), "the job accepted")
    assert by_id(browser, "train-error").get_attribute("hidden") is not None
    assert by_id(browser, "job-detail").get_attribute("data-job-id") == job_id
    return str(job_id)


def follow_to_the_end(browser: WebDriver, job_id: str) -> list[str]:
    """Wait for the job's final state, noting each value its progress bar showed."""
    detail, bar = by_id(browser, "job-detail"), by_id(browser, "job-progress")
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while detail.get_attribute("data-state") not in FINAL_STATES:
        assert time.monotonic() < deadline, f"job {job_id} not done in {WAIT_S} s: {seen}"
        value = bar.get_attribute("aria-valuenow") or ""
        if not seen or seen[-1] != value:
            seen.append(value)
        time.sleep(0.1)
    assert detail.get_attribute("data-state") == "succeeded", by_id(browser, "job-error").text
    curves = by_id(browser, "curves")
    wait_for(browser, lambda _: curves.get_attribute("data-points") == str(EPOCHS), "every epoch")
    assert bar.get_attribute("aria-valuenow") == "100"
    assert f"epoch {EPOCHS}/{EPOCHS}" in by_id(browser, "job-progress-text").text
    return seen


def predict_through_the_form(
    browser: WebDriver, sample: list[float]
) -> tuple[str, dict[str, float]]:
    """Select the model, predict `sample`: the label shown and each class's probability."""
    model_row = f'li[data-testid="model-row"][data-model="{MODEL}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, model_row), "the model listed")
    browser.find_element(By.CSS_SELECTOR, model_row).click()
    detail = by_id(browser, "model-detail")
    wait_for(browser, lambda _: detail.get_attribute("data-model") == MODEL, "its metadata")
    assert detail.get_attribute("data-version") == "1"
    by_id(browser, "predict-input").send_keys(", ".join(map(str, sample)))
    by_id(browser, "predict-submit").click()
    label = wait_for(browser, lambda d: by_id(d, "predict-label").text, "a predicted label")
    bars = browser.find_elements(By.CSS_SELECTOR, '[data-testid="probability"]')
    probabilities = {str(bar.get_attribute("data-class")): float(bar.get_attribute("data-value")
                     or "nan") for bar in bars}  # fmt: skip
    return str(label), probabilities


def save_screenshot(browser: WebDriver, name: str = "dashboard.png") -> Path:
    """The whole page, not only the window: the viewport stretched to its height."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), path
    return path


def wait_for(browser: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(condition, f"waiting: {what}")


def by_id(browser: WebDriver, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)
