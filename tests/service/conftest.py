from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app
from worker.context import WorkerContext
from worker.runner import run_training_job


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


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
