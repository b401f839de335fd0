"""With Redis unreachable: jobs answer 503 with the reason, prediction and
datasets keep working."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from models.settings import Settings
from service.app import create_app

X = np.random.default_rng(2).normal(size=(30, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 8},
}


def test_jobs_are_503_while_prediction_goes_on(
    publish: Callable[..., dict[str, Any]], settings: Settings, auth: dict[str, str]
) -> None:
    body = json.dumps({"x": X.tolist(), "y": X.sum(axis=1).tolist()}).encode()
    trained = publish("still-serving", SPEC, body, "application/json")
    down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    client = down.test_client()

    job = {"model": "m", "spec": SPEC, "dataset": trained["dataset"]}
    submit = client.post("/v1/jobs", headers=auth, json=job)
    assert submit.status_code == 503
    assert "Redis" in submit.json["error"]["message"]
    assert client.get("/v1/jobs", headers=auth).status_code == 503
    assert client.get("/readyz").status_code == 503

    predicted = client.post("/v1/models/still-serving:predict", headers=auth,
                            json={"instances": X[:2].tolist()})  # fmt: skip
    assert predicted.status_code == 200
    assert client.get(f"/v1/datasets/{trained['dataset']}", headers=auth).status_code == 200
