"""The TF Serving REST surface on models published by the real training path."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore

GENERATOR = np.random.default_rng(0)
X = GENERATOR.normal(size=(60, 4)).round(3)
SPECIES = np.array(["setosa", "versicolor", "virginica"])[np.argmax(X[:, :3], axis=1)]


def dataset(x: np.ndarray, y: np.ndarray) -> bytes:
    return json.dumps({"x": x.tolist(), "y": y.tolist()}).encode()


def spec(head: dict[str, Any], loss: str) -> dict[str, Any]:
    return {
        "input_shape": [4],
        "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                   {"type": "dropout", "rate": 0.2},
                   {"type": "batch_normalization"}, head],
        "compile": {"loss": loss, "optimizer": "adam"},
        "fit": {"epochs": 3, "batch_size": 8},
        "seed": 1,
    }  # fmt: skip


HEADS = {
    "softmax": (spec({"type": "dense", "units": 3, "activation": "softmax"},
                     "categorical_crossentropy"), SPECIES),
    "sigmoid": (spec({"type": "dense", "units": 1, "activation": "sigmoid"},
                     "binary_crossentropy"), (X[:, 0] > 0).astype(int)),
    "linear": (spec({"type": "dense", "units": 1}, "mse"), X.sum(axis=1)),
}  # fmt: skip


@pytest.fixture(params=list(HEADS))
def model(request: pytest.FixtureRequest, publish: Callable[..., dict[str, Any]]) -> str:
    head_spec, labels = HEADS[request.param]
    publish(request.param, head_spec, dataset(X, labels), "application/json")
    return str(request.param)


def keras_predict(app_settings: Any, name: str, x: np.ndarray) -> np.ndarray:
    import keras

    path = ModelStore(open_blobs(app_settings)).model_file(name, 1)
    return np.asarray(keras.saving.load_model(path, safe_mode=True).predict(x, verbose=0))


def test_row_and_columnar_formats_match_keras(
    client: FlaskClient, auth: dict[str, str], model: str, settings: Any
) -> None:
    expected = keras_predict(settings, model, X[:10])
    rows = client.post(f"/v1/models/{model}:predict", json={"instances": X[:10].tolist()},
                       headers=auth)  # fmt: skip
    assert rows.status_code == 200, rows.json
    np.testing.assert_allclose(rows.json["predictions"], expected, atol=1e-5, rtol=1e-5)
    columnar = client.post(f"/v1/models/{model}/versions/1:predict",
                           json={"inputs": {"x": X[:10].tolist()}}, headers=auth)  # fmt: skip
    np.testing.assert_allclose(columnar.json["outputs"], expected, atol=1e-5, rtol=1e-5)
    if model == "linear":
        assert "labels" not in rows.json
    elif model == "softmax":
        classes = ["setosa", "versicolor", "virginica"]
        assert rows.json["labels"] == [classes[i] for i in expected.argmax(axis=1)]
    else:
        assert rows.json["labels"] == [int(p >= 0.5) for p in expected[:, 0]]


def test_csv_and_npy_bodies_and_accept(
    client: FlaskClient, auth: dict[str, str], model: str, settings: Any
) -> None:
    expected = keras_predict(settings, model, X[:5])
    csv_body = "a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in X[:5])
    as_csv = client.post(
        f"/v1/models/{model}:predict", data=csv_body,
        headers={**auth, "Content-Type": "text/csv", "Accept": "text/csv"},
    )  # fmt: skip
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    lines = as_csv.get_data(as_text=True).strip().splitlines()
    assert len(lines) == 6 and lines[0].startswith("output_0")
    buffer = io.BytesIO()
    np.save(buffer, X[:5].astype("float32"))
    as_npy = client.post(
        f"/v1/models/{model}:predict", data=buffer.getvalue(),
        headers={**auth, "Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )  # fmt: skip
    assert as_npy.status_code == 200
    np.testing.assert_allclose(np.load(io.BytesIO(as_npy.data)), expected, atol=1e-5, rtol=1e-5)


def test_a_wrong_shape_names_the_sample(
    client: FlaskClient, auth: dict[str, str], model: str
) -> None:
    samples = X[:3].tolist()
    samples[2] = samples[2][:3]
    response = client.post(f"/v1/models/{model}:predict", json={"instances": samples},
                           headers=auth)  # fmt: skip
    assert response.status_code == 400
    error = response.json["error"]
    assert "Sample 2" in error["message"] and "[4]" in error["message"]
    assert error["details"][0]["loc"] == ["instances", 2]


def test_status_metadata_and_listing(client: FlaskClient, auth: dict[str, str], model: str) -> None:
    status = client.get(f"/v1/models/{model}", headers=auth).json
    assert status["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    metadata = client.get(f"/v1/models/{model}/versions/1/metadata", headers=auth).json
    assert metadata["model_spec"] == {"name": model, "version": "1",
                                      "signature_name": "serving_default"}  # fmt: skip
    details = metadata["metadata"]
    assert details["input_shape"] == [4]
    assert details["task"] == {"softmax": "categorical", "sigmoid": "binary",
                               "linear": "regression"}[model]  # fmt: skip
    assert set(details["metrics"]) >= {"loss"} and details["dataset"]
    listing = client.get("/v1/models", headers=auth).json["models"]
    assert [entry["name"] for entry in listing] == [model]


def test_unknown_model_and_version_are_404(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/models/nothing:predict", json={"instances": [[1, 2, 3, 4]]},
                           headers=auth)  # fmt: skip
    assert response.status_code == 404
    assert "nothing" in response.json["error"]["message"]


def test_a_normalization_first_layer_is_published_and_served(
    client: FlaskClient, auth: dict[str, str], publish: Callable[..., dict[str, Any]],
    settings: Any,
) -> None:  # fmt: skip
    import keras
    from sklearn import datasets

    # The diabetes features as measured (age in years, blood pressure in mm Hg, ...).
    raw = datasets.load_diabetes(scaled=False)
    x, y = raw.data[:120], raw.target[:120]
    diabetes_spec = {
        "input_shape": [10],
        "layers": [{"type": "normalization"}, {"type": "dense", "units": 8, "activation": "relu"},
                   {"type": "dense", "units": 1}],
        "compile": {"loss": "mse", "optimizer": "adam"},
        "fit": {"epochs": 3, "batch_size": 16, "validation_split": 0.2},
        "seed": 2,
    }  # fmt: skip
    publish("diabetes", diabetes_spec, dataset(x, y), "application/json")
    path = ModelStore(open_blobs(settings)).model_file("diabetes", 1)
    published = keras.saving.load_model(path, safe_mode=True)
    # Adapted on the 96 training rows, and saved with the model.
    np.testing.assert_allclose(published.layers[0].adapt_mean, x[:96].mean(axis=0), rtol=1e-5)
    answer = client.post("/v1/models/diabetes:predict", json={"instances": x[90:110].tolist()},
                         headers=auth)  # fmt: skip
    assert answer.status_code == 200, answer.json
    expected = published.predict(x[90:110].astype("float32"), verbose=0)
    np.testing.assert_allclose(answer.json["predictions"], expected, rtol=1e-5, atol=1e-5)
    # Served by the numpy pass, which matched Keras on its probe.
    assert client.application.extensions["fitserve"].predictor.get("diabetes").engine == "numpy"
