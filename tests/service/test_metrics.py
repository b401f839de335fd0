"""/metrics: Prometheus text, counting what the API did and what Redis holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

X = np.random.default_rng(6).normal(size=(24, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 2, "batch_size": 8},
}


def scrape(client: FlaskClient, auth: dict[str, str]) -> dict[tuple[str, tuple[Any, ...]], float]:
    response = client.get("/metrics", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_requests_predictions_jobs_and_training(
    client: FlaskClient, auth: dict[str, str], publish: Callable[..., dict[str, Any]]
) -> None:
    body = json.dumps({"x": X.tolist(), "y": X.sum(axis=1).tolist()}).encode()
    trained = publish("metered", SPEC, body, "application/json")
    before = scrape(client, auth)
    for rows in (1, 5):
        response = client.post("/v1/models/metered:predict", headers=auth,
                               json={"instances": X[:rows].tolist()})  # fmt: skip
        assert response.status_code == 200
    job = {"model": "waits", "spec": SPEC, "dataset": trained["dataset"]}
    queued = client.post("/v1/jobs", headers=auth, json=job)
    assert queued.status_code == 202
    after = scrape(client, auth)

    predicted = ("fitserve_predictions_total", (("model", "metered"),))
    assert after[predicted] - before.get(predicted, 0.0) == 6
    route = (("method", "POST"), ("route", "/v1/models/<model:name>:predict"), ("status", "200"))
    count = ("fitserve_http_request_duration_seconds_count", route)
    assert after[count] - before.get(count, 0.0) == 2
    assert after[("fitserve_jobs", (("state", "succeeded"),))] == 1
    assert after[("fitserve_jobs", (("state", "queued"),))] == 1
    # Nothing consumes this test's queue: the job waits there.
    queue = client.application.extensions["fitserve"].settings.queues.cpu
    assert after[("fitserve_queue_depth", (("queue", queue),))] == 1
    assert after[("fitserve_training_samples_total", (("device", "cpu"),))] == 24 * 2
    assert after[("fitserve_training_samples_per_second", (("device", "cpu"),))] > 0
    assert after[("fitserve_loaded_models", ())] >= 1
    assert after[("fitserve_model_memory_bytes", ())] > 0


def test_metrics_need_a_key(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 401
