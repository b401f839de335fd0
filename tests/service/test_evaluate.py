""":evaluate against Keras' own `evaluate` of the published `.keras` file, for
the three heads (softmax with one-hot and with index labels), on held-out
datasets of more rows than one chunk; its 4xx answers, the predict-only key,
and the version and label routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app
from tests.conftest import API_KEY

PREDICT_KEY = "predict-key-0123456789"
CHUNK_ROWS = 32  # the held-out sets have 3 to 4 chunks, the last one short
rng = np.random.default_rng(11)
X = rng.normal(size=(160, 4)).round(3)
TRAIN, HELD_OUT = slice(0, 60), slice(60, 160)
HIDDEN = [
    {"type": "dense", "units": 8, "activation": "relu", "kernel_regularizer": {"l2": 0.01}},
    {"type": "batch_normalization"},
    {"type": "dropout", "rate": 0.1},
]


def spec(head: dict[str, Any], loss: str, metrics: list[str]) -> dict[str, Any]:
    return {"input_shape": [4], "layers": [*HIDDEN, head],
            "compile": {"loss": loss, "optimizer": "adam", "metrics": metrics},
            "fit": {"epochs": 3, "batch_size": 16}, "seed": 0}  # fmt: skip


BINARY_LABELS = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
CLASS_LABELS = np.digitize(X[:, 0], [-0.5, 0.5])  # 0, 1, 2
TARGETS = np.stack([X[:, 0] * 2 + X[:, 1], X[:, 2] - 0.5], axis=1).round(3)
MODELS = {
    "binary": (
        spec({"type": "dense", "units": 1, "activation": "sigmoid"}, "binary_crossentropy",
             ["accuracy", "auc", "precision", "recall", "mse"]),
        BINARY_LABELS,
    ),
    "onehot": (
        spec({"type": "dense", "units": 3, "activation": "softmax"}, "categorical_crossentropy",
             ["accuracy", "categorical_accuracy", "mae"]),
        CLASS_LABELS,
    ),
    "sparse": (
        spec({"type": "dense", "units": 3, "activation": "softmax"},
             "sparse_categorical_crossentropy", ["accuracy", "categorical_accuracy"]),
        CLASS_LABELS,
    ),
    "regression": (
        spec({"type": "dense", "units": 2}, "huber",
             ["mse", "mean_absolute_error", "root_mean_squared_error",
              "mean_absolute_percentage_error"]),
        TARGETS,
    ),
}  # fmt: skip


@pytest.fixture
def app(settings: Settings) -> Flask:
    limits = settings.limits.model_copy(update={"evaluate_chunk_rows": CHUNK_ROWS})
    keys = [API_KEY, f"predict:{PREDICT_KEY}"]
    return create_app(settings.model_copy(update={"limits": limits, "api_keys": keys}))


def dataset_body(rows: slice, y: np.ndarray) -> bytes:
    return json.dumps({"x": X[rows].tolist(), "y": y[rows].tolist()}).encode()


def upload(client: FlaskClient, auth: dict[str, str], body: bytes) -> str:
    stored = client.post("/v1/datasets", data=body,
                         headers={**auth, "Content-Type": "application/json"})  # fmt: skip
    assert stored.status_code in (200, 201), stored.json
    return str(stored.json["id"])


def keras_evaluate(app: Flask, name: str, y: np.ndarray) -> dict[str, float]:
    """Keras' `evaluate` of the published file on the held-out rows, the labels
    encoded by hand as the seed's programs do."""
    import keras

    store = app.extensions["fitserve"].models
    metadata = store.metadata(name, 1)
    classes = metadata["classes"]
    if metadata["task"] == "regression":
        encoded = y.astype(np.float32)
    else:
        indices = np.array([classes.index(label) for label in y.tolist()])
        if metadata["task"] == "binary":
            encoded = indices.astype(np.float32).reshape(-1, 1)
        elif metadata["spec"]["compile"]["loss"] == "sparse_categorical_crossentropy":
            encoded = indices
        else:
            encoded = np.eye(len(classes), dtype=np.float32)[indices]
    model = keras.saving.load_model(store.model_file(name, 1))
    x = X[HELD_OUT].astype(np.float32)
    return dict(model.evaluate(x, encoded, verbose=0, return_dict=True))


@pytest.mark.parametrize("name", list(MODELS))
def test_evaluate_is_keras_evaluate_of_the_published_file(
    name: str, app: Flask, client: FlaskClient, auth: dict[str, str],
    publish: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    model_spec, y = MODELS[name]
    publish(name, model_spec, dataset_body(TRAIN, y), "application/json")
    dataset = upload(client, auth, dataset_body(HELD_OUT, y))
    answer = client.post(f"/v1/models/{name}:evaluate", json={"dataset": dataset}, headers=auth)
    assert answer.status_code == 200, answer.json
    assert answer.headers["Fitserve-Model-Version"] == "1"
    assert answer.json["rows"] == 100
    expected = keras_evaluate(app, name, y[HELD_OUT])
    assert set(answer.json["metrics"]) == {"loss", *model_spec["compile"]["metrics"]}
    assert set(expected) == set(answer.json["metrics"])
    for metric, value in expected.items():
        assert answer.json["metrics"][metric] == pytest.approx(value, rel=1e-5, abs=1e-4), metric


def test_routes_keys_and_refusals(
    app: Flask, client: FlaskClient, auth: dict[str, str], publish: Callable[..., dict[str, Any]]
) -> None:
    model_spec, y = MODELS["binary"]
    publish("clf", model_spec, dataset_body(TRAIN, y), "application/json")
    dataset = upload(client, auth, dataset_body(HELD_OUT, y))
    predictor = {"Authorization": f"Bearer {PREDICT_KEY}"}
    latest = client.post("/v1/models/clf:evaluate", json={"dataset": dataset}, headers=predictor)
    assert latest.status_code == 200, latest.json
    assert client.put("/v1/models/clf/labels/stable", json={"version": 1},
                      headers=auth).status_code == 200  # fmt: skip
    for path in ("/v1/models/clf/versions/1:evaluate", "/v1/models/clf/labels/stable:evaluate"):
        pinned = client.post(path, json={"dataset": dataset}, headers=predictor)
        assert pinned.status_code == 200, pinned.json
        assert pinned.json == latest.json
        assert pinned.headers["Fitserve-Model-Version"] == "1"

    def refused(body: Any, status: int = 422, path: str = "/v1/models/clf:evaluate") -> dict:
        answer = client.post(path, json=body, headers=auth)
        assert answer.status_code == status, answer.json
        return dict(answer.json["error"])

    wide = upload(client, auth, json.dumps({"x": [[0.0] * 5] * 4, "y": ["no", "yes"] * 2}).encode())
    error = refused({"dataset": wide})
    assert error["details"][0]["loc"] == ["dataset"]
    assert "[5]" in error["message"] and "takes [4]" in error["message"]

    unseen = {"x": X[:4].tolist(), "y": ["no", "yes", "maybe", "no"]}
    maybe = upload(client, auth, json.dumps(unseen).encode())
    error = refused({"dataset": maybe})
    assert error["code"] == "spec_dataset_mismatch"
    assert error["details"][0]["loc"] == ["dataset"]
    assert "['maybe']" in error["message"] and "['no', 'yes']" in error["message"]

    numbers = upload(client, auth, json.dumps({"x": X[:4].tolist(), "y": [0, 1, 1, 0]}).encode())
    error = refused({"dataset": numbers})
    assert "[0, 1]" in error["message"] and "['no', 'yes']" in error["message"]

    error = refused({"dataset": "0123456789abcdef01234567"})
    assert error["details"][0]["loc"] == ["dataset"]
    assert "No dataset with id" in error["message"]

    # More values than an API process should hold: refused before loading.
    app.extensions["fitserve"].settings.limits.max_evaluate_values = 100 * 4 - 1
    error = refused({"dataset": dataset})
    assert error["details"][0]["loc"] == ["dataset"] and "400 input values" in error["message"]
    app.extensions["fitserve"].settings.limits.max_evaluate_values = 100 * 4
    assert client.post("/v1/models/clf:evaluate", json={"dataset": dataset},
                       headers=auth).status_code == 200  # fmt: skip

    assert refused({"dataset": 3}, 422)["details"][0]["loc"] == ["dataset"]
    refused({}, 422)
    refused({"dataset": dataset}, 404, "/v1/models/clf/versions/7:evaluate")
    refused({"dataset": dataset}, 404, "/v1/models/clf/labels/canary:evaluate")
    refused({"dataset": dataset}, 404, "/v1/models/nothing:evaluate")


def test_unlabelled_and_misfit_targets_are_refused(
    app: Flask, client: FlaskClient, auth: dict[str, str], publish: Callable[..., dict[str, Any]]
) -> None:
    model_spec, y = MODELS["regression"]
    publish("reg", model_spec, dataset_body(TRAIN, y), "application/json")

    def refused(dataset: str) -> str:
        answer = client.post("/v1/models/reg:evaluate", json={"dataset": dataset}, headers=auth)
        assert answer.status_code == 422, answer.json
        assert answer.json["error"]["details"][0]["loc"] == ["dataset"]
        return str(answer.json["error"]["message"])

    one_target = upload(client, auth, dataset_body(HELD_OUT, TARGETS[:, 0]))
    assert "1 target values per row" in refused(one_target) and "2 outputs" in refused(one_target)
    text = upload(client, auth, dataset_body(HELD_OUT, BINARY_LABELS))
    assert "text labels" in refused(text)
    # A dataset stored without labels (none can be uploaded yet; stored as a
    # labelless upload would be).
    parts = app.extensions["fitserve"]
    record = parts.datasets.get(one_target)
    unlabelled = "ab" * 12
    parts.datasets.files.put(unlabelled, X[:8].astype(np.float32), np.empty(0, np.float32),
                             {**record, "id": unlabelled, "rows": 8})  # fmt: skip
    assert "has no labels" in refused(unlabelled)
