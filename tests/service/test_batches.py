"""100,000 rows in one request, in and out as JSON, CSV and NPY."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

ROWS = 100_000
SPEC = {
    "input_shape": [4],
    "layers": [{"type": "dense", "units": 8, "activation": "relu"},
               {"type": "dense", "units": 1, "activation": "sigmoid"}],
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 16},
    "seed": 4,
}  # fmt: skip
X = np.random.default_rng(8).normal(size=(ROWS, 4)).astype("float32")


@pytest.fixture
def model(publish: Callable[..., dict[str, Any]], client: FlaskClient) -> np.ndarray:
    body = json.dumps({"x": X[:64].tolist(), "y": (X[:64, 0] > 0).astype(int).tolist()})
    publish("big", SPEC, body.encode(), "application/json")
    predictor = client.application.extensions["fitserve"].predictor
    return predictor.predict("big", None, X).outputs  # the reference, in process


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


BODIES = {
    "application/json": lambda: json.dumps({"instances": X.tolist()}).encode(),
    "text/csv": lambda: "\n".join(",".join(map(str, row)) for row in X.tolist()).encode(),
    "application/x-npy": lambda: npy(X),
}


@pytest.mark.parametrize("accept", ["application/json", "text/csv", "application/x-npy"])
@pytest.mark.parametrize("content_type", list(BODIES))
def test_a_100000_row_batch_in_every_format(
    client: FlaskClient, auth: dict[str, str], model: np.ndarray, content_type: str, accept: str
) -> None:
    response = client.post(
        "/v1/models/big:predict", data=BODIES[content_type](),
        headers={**auth, "Content-Type": content_type, "Accept": accept},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.mimetype == accept
    if accept == "application/x-npy":
        outputs = np.load(io.BytesIO(response.data))
    elif accept == "text/csv":
        table = np.genfromtxt(io.BytesIO(response.data), delimiter=",", skip_header=1)
        outputs, labels = table[:, :1], table[:, 1]
        np.testing.assert_array_equal(labels, (outputs[:, 0] >= 0.5).astype(int))
    else:
        answer = json.loads(response.data)
        outputs = np.asarray(answer["predictions"])
        assert len(answer["labels"]) == ROWS
    assert outputs.shape == (ROWS, 1)
    # CSV and JSON round the float32 values to their shortest text form.
    np.testing.assert_allclose(outputs, model, rtol=1e-5, atol=1e-6)
