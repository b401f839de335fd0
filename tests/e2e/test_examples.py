"""The seed's four programs, trained and served through HTTP by a real worker."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.datasets import parse_dataset
from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore
from tests.e2e.conftest import Live

EXAMPLES = Path(__file__).parents[2] / "examples"
DATA_FILES = {
    "breast_cancer": ("breast_cancer.csv", "text/csv"),
    "iris": ("iris.csv", "text/csv"),
    "diabetes": ("diabetes.csv", "text/csv"),
    "digits": ("digits.npz", "application/x-npz"),
}
# Final training metrics each example must reach (the plain Keras script gets there too).
QUALITY = {
    "breast_cancer": ("accuracy", 0.95),
    "iris": ("accuracy", 0.9),
    "digits": ("accuracy", 0.85),
}


@pytest.fixture(scope="session")
def example_data() -> Path:
    runpy.run_path(str(EXAMPLES / "make_datasets.py"), run_name="__main__")
    return EXAMPLES / "data"


@pytest.mark.parametrize("example", list(DATA_FILES))
def test_example_trains_and_serves(live: Live, example_data: Path, example: str) -> None:
    filename, media_type = DATA_FILES[example]
    body = (example_data / filename).read_bytes()
    spec_part = (EXAMPLES / f"{example}.json").read_bytes()
    response = live.http.post(
        live.url("/v1/jobs"),
        files={"spec": ("spec.json", spec_part, "application/json"),
               "file": (filename, body, media_type)},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["Location"] == f"/v1/jobs/{job_id}"
    snapshots = _follow(live, job_id)
    job = snapshots[-1]
    assert job["state"] == "succeeded", job["error"]
    epochs = json.loads(spec_part)["spec"]["fit"]["epochs"]
    assert job["progress"]["epoch"] == epochs
    assert len(job["history"]["loss"]) == epochs
    assert job["attempts"] == 1 and job["device"] == "cpu"
    print(f"\n{example}: metrics {job['result']['metrics']}, "
          f"{job['started_at']} -> {job['finished_at']}")  # fmt: skip

    dataset = parse_dataset(body, media_type)
    _assert_quality(example, job["result"]["metrics"], dataset.y)
    _assert_served_like_keras(live, job, dataset.x[:64])


EPOCHS = 600


def test_progress_is_visible_while_training(live: Live, example_data: Path) -> None:
    spec = json.loads((EXAMPLES / "diabetes.json").read_bytes())
    record = live.http.post(
        live.url("/v1/datasets"), data=(example_data / "diabetes.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
    ).json()  # fmt: skip
    # Long enough (a few seconds) that the polls below see it mid-way even when
    # the API is starved of CPU for a moment by the training beside it: 60
    # epochs took 0.3 s once compiled, and one GET waited 0.39 s in CI.
    spec["spec"]["fit"]["epochs"] = EPOCHS
    response = live.http.post(live.url("/v1/jobs"), json={**spec, "dataset": record["id"]})
    assert response.status_code == 202, response.text
    snapshots = _follow(live, response.json()["id"])
    midway = [
        job for job in snapshots
        if job["state"] == "running" and 0 < job["progress"]["epoch"] < EPOCHS
    ]  # fmt: skip
    assert midway, "no snapshot showed a running job between its first and last epoch"
    assert "loss" in midway[0]["metrics"]
    assert len(midway[0]["history"]["loss"]) == midway[0]["progress"]["epoch"]
    assert snapshots[-1]["state"] == "succeeded"


def _follow(live: Live, job_id: str) -> list[dict[str, Any]]:
    snapshots = []
    while True:
        job = live.http.get(live.url(f"/v1/jobs/{job_id}")).json()
        snapshots.append(job)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return snapshots


def _assert_quality(example: str, metrics: dict[str, float], y: np.ndarray) -> None:
    if example == "diabetes":
        # Better than predicting the mean by a clear margin.
        assert metrics["loss"] < 0.7 * float(np.var(y)), metrics
        return
    name, floor = QUALITY[example]
    assert metrics[name] >= floor, metrics


def _assert_served_like_keras(live: Live, job: dict[str, Any], x: np.ndarray) -> None:
    import keras

    name, version = job["result"]["model"], job["result"]["version"]
    path = ModelStore(open_blobs(live.settings)).model_file(name, version)
    expected = keras.saving.load_model(path, safe_mode=True).predict(x, verbose=0)

    rows = live.http.post(live.url(f"/v1/models/{name}:predict"), json={"instances": x.tolist()})
    assert rows.status_code == 200, rows.text
    # 1e-5, relative as well as absolute: regression outputs near 130 are
    # float32 values 1.5e-5 apart, so no two summation orders agree closer.
    np.testing.assert_allclose(rows.json()["predictions"], expected, atol=1e-5, rtol=1e-5)
    columnar = live.http.post(
        live.url(f"/v1/models/{name}/versions/{version}:predict"), json={"inputs": x.tolist()}
    )
    np.testing.assert_allclose(columnar.json()["outputs"], expected, atol=1e-5, rtol=1e-5)

    metadata = live.http.get(live.url(f"/v1/models/{name}/metadata")).json()["metadata"]
    if metadata["task"] == "regression":
        assert "labels" not in rows.json()
        return
    classes = metadata["classes"]
    indices = (expected[:, 0] >= 0.5).astype(int) if expected.shape[1] == 1 else expected.argmax(1)
    assert rows.json()["labels"] == [classes[index] for index in indices]
