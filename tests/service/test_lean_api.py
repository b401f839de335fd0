"""An API process serves the models the numpy pass can serve without ever
importing Keras, JAX or TensorFlow: a real process (the app made by
`create_app`, as a granian worker makes it) over a store with a freshly
published model warms it, answers `:predict` and `:evaluate`, and has
none of the three in `sys.modules`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask

from models.settings import Settings
from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parents[2]
rng = np.random.default_rng(3)
X = (rng.normal(size=(90, 4)) * [1, 10, 100, 0.1] + [0, 50, -300, 2]).round(3)
LABELS = np.digitize(X[:, 0], [-0.5, 0.5])  # three classes
SPEC = {
    "input_shape": [4],
    # Every layer kind the numpy pass serves.
    "layers": [{"type": "normalization"},
               {"type": "dense", "units": 8, "activation": "relu",
                "kernel_regularizer": {"l2": 0.01}},
               {"type": "batch_normalization"},
               {"type": "dropout", "rate": 0.1},
               {"type": "dense", "units": 3, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
    "fit": {"epochs": 2, "batch_size": 16},
    "seed": 0,
}  # fmt: skip

# The API process: what it answers, and which frameworks it imported.
API_PROCESS = """
import json, os, sys
from models.settings import Settings
from service.app import create_app

settings = Settings.model_validate_json(os.environ["LEAN_TEST_SETTINGS"])
app = create_app(settings)
assert app.extensions["fitserve"].predictor.warmup.wait(120), "the warm-up never ended"
client = app.test_client()
auth = {"Authorization": "Bearer " + os.environ["LEAN_TEST_KEY"]}
rows = json.loads(os.environ["LEAN_TEST_ROWS"])
predicted = client.post("/v1/models/lean:predict", json={"instances": rows}, headers=auth)
evaluated = client.post("/v1/models/lean:evaluate",
                        json={"dataset": os.environ["LEAN_TEST_DATASET"]}, headers=auth)
print(json.dumps({
    "predict": [predicted.status_code, predicted.get_json()],
    "evaluate": [evaluated.status_code, evaluated.get_json()],
    "engine": app.extensions["fitserve"].predictor.get("lean").engine,
    "backend": os.environ.get("KERAS_BACKEND"),
    "imported": [name for name in ("keras", "jax", "tensorflow") if name in sys.modules],
}))
"""


@pytest.fixture
def published(settings: Settings, app: Flask, publish: Callable[..., dict[str, Any]]) -> str:
    """The model `lean`, trained and published as a worker does; the id of its dataset."""
    body = json.dumps({"x": X.tolist(), "y": LABELS.tolist()}).encode()
    publish("lean", SPEC, body, "application/json")
    record, _ = app.extensions["fitserve"].datasets.save(body, "application/json")
    return str(record["id"])


def test_an_api_process_serves_without_keras_jax_or_tensorflow(
    settings: Settings, app: Flask, published: str
) -> None:
    import keras

    environment = {**os.environ, "PYTHONPATH": str(ROOT), "LEAN_TEST_KEY": API_KEY,
                   "LEAN_TEST_SETTINGS": settings.model_dump_json(),
                   "LEAN_TEST_ROWS": json.dumps(X[:5].tolist()),
                   "LEAN_TEST_DATASET": published}  # fmt: skip
    # create_app must choose the backend itself, for a later lazy import.
    environment.pop("KERAS_BACKEND", None)
    finished = subprocess.run([sys.executable, "-c", API_PROCESS], env=environment, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    answer = json.loads(finished.stdout.strip().splitlines()[-1])
    assert answer["imported"] == [], answer["imported"]
    assert answer["engine"] == "numpy" and answer["backend"] == settings.keras_backend
    status, predicted = answer["predict"]
    assert status == 200, predicted
    model = keras.saving.load_model(app.extensions["fitserve"].models.model_file("lean", 1))
    expected = np.asarray(model(X[:5].astype("float32"), training=False))
    np.testing.assert_allclose(predicted["predictions"], expected, rtol=1e-5, atol=1e-5)
    status, evaluated = answer["evaluate"]
    assert status == 200 and evaluated["rows"] == len(X), evaluated
    assert set(evaluated["metrics"]) == {"loss", "accuracy"}
