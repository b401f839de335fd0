from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app
from tests.oip_grpc import grpc_server
from worker.context import WorkerContext
from worker.runner import run_training_job


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def grpc_address(app: Flask) -> Iterator[str]:
    """The app's gRPC server (service.grpc_api), in this process: its address."""
    with grpc_server(app) as address:
        yield address


@pytest.fixture
def publish(app: Flask) -> Callable[..., dict[str, Any]]:
    """Train and publish a model the way the worker does (runner, in process)."""
    parts = app.extensions["fitserve"]

    def run(model: str, spec: dict[str, Any], body: bytes, media_type: str) -> dict[str, Any]:
        record, _ = parts.datasets.save(body, media_type)
        job = parts.jobs.create("train", model, record["id"], spec=spec)
        context = WorkerContext.from_settings(
            parts.settings, parts.jobs.redis, "test", "cpu", parts.settings.keras_backend
        )
        finished = run_training_job(job["id"], context)
        assert finished["state"] == "succeeded", finished["error"]
        return finished

    return run


# A small classifier of two string classes ("cat" when the first of 4
# features is below 0, else "dog"): any trained model to ask questions of.
PETS_X = np.random.default_rng(5).normal(size=(40, 4)).round(3).astype(np.float32)
PETS_LABELS = np.array(["cat", "dog"])[(PETS_X[:, 0] > 0).astype(int)]
PETS_SPEC = {
    "input_shape": [4],
    "layers": [{"type": "dense", "units": 6, "activation": "relu"},
               {"type": "dense", "units": 2, "activation": "softmax"}],
    "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 2, "batch_size": 8},
    "seed": 2,
}  # fmt: skip


@pytest.fixture
def pets(publish: Callable[..., dict[str, Any]]) -> str:
    """Version 1 of model `pets`: PETS_SPEC trained on PETS_X and PETS_LABELS."""
    body = json.dumps({"x": PETS_X.tolist(), "y": PETS_LABELS.tolist()}).encode()
    publish("pets", PETS_SPEC, body, "application/json")
    return "pets"
