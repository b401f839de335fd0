"""What operators see of the live service: JSON logs carrying job ids, and
/metrics summed over the API's processes."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Live

X = np.random.default_rng(7).normal(size=(40, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 3, "batch_size": 8},
}


def json_lines(path: Any) -> list[dict[str, Any]]:
    """The log's JSON lines (Celery's start-up banner is plain text)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def train(live: Live, model: str) -> dict[str, Any]:
    body = {"x": X.tolist(), "y": X.sum(axis=1).tolist()}
    dataset = live.http.post(live.url("/v1/datasets"), json=body).json()["id"]
    request = {"model": model, "spec": SPEC, "dataset": dataset}
    job = live.http.post(live.url("/v1/jobs"), json=request).json()
    assert live.wait_for_job(job["id"])["state"] == "succeeded"
    return dict(job)


def job_lines(path: Any, job_id: str, last: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The log's lines about `job_id`, once the line `last` is among them (or
    the deadline passed): the worker logs a job's end after recording it, so
    a client can see the job succeed a moment before the line is written."""
    deadline = time.monotonic() + timeout_s
    while True:
        about_job = [entry for entry in json_lines(path) if entry.get("job_id") == job_id]
        if any(entry["message"] == last for entry in about_job) or time.monotonic() > deadline:
            return about_job
        time.sleep(0.05)


def test_logs_are_json_with_job_ids_and_access_lines(live: Live) -> None:
    job = train(live, "logged")

    folder = live.settings.data_dir.parent
    about_job = job_lines(folder / "worker.log", job["id"], "job succeeded: logged version 1")
    messages = [entry["message"] for entry in about_job]
    assert any(message.startswith("job started") for message in messages), messages
    assert any(message == "job succeeded: logged version 1" for message in messages)
    assert all({"time", "level", "logger"} <= entry.keys() for entry in about_job)

    access = [entry for entry in json_lines(folder / "api.log")
              if entry.get("logger") == "fitserve.access"]  # fmt: skip
    submitted = [entry for entry in access
                 if entry["route"] == "/v1/jobs" and entry["method"] == "POST"]  # fmt: skip
    assert submitted and submitted[-1]["status"] == 202
    assert isinstance(submitted[-1]["duration_ms"], float)
    assert not any("test-key" in json.dumps(entry) for entry in access)  # keys are never logged


def test_metrics_add_up_over_the_server_s_processes(live: Live) -> None:
    train(live, "metered-live")
    for _ in range(7):
        answer = live.http.post(live.url("/v1/models/metered-live:predict"),
                                json={"instances": X[:3].tolist()})  # fmt: skip
        assert answer.status_code == 200

    scraped = live.http.get(live.url("/metrics"))
    assert scraped.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    assert samples[("fitserve_predictions_total", (("model", "metered-live"),))] == 21
    assert samples[("fitserve_jobs", (("state", "succeeded"),))] >= 1
    assert samples[("fitserve_workers", (("device", "cpu"),))] == 1
    assert samples[("fitserve_training_samples_total", (("device", "cpu"),))] >= 40 * 3
    route = (("method", "POST"), ("route", "/v1/models/<model:name>:predict"), ("status", "200"))
    assert samples[("fitserve_http_request_duration_seconds_count", route)] >= 7
