"""`GET /v1/workers` counts the workers serving each queue, and `/readyz` warns
(still 200) of a queue that no worker serves: jobs sent there would wait."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings


def register(app: Flask, name: str, queue: str) -> None:
    app.extensions["fitserve"].workers.beat({
        "name": name, "hostname": "h", "pid": 1, "device": "cpu", "gpus": [], "backend": "jax",
        "queue": queue, "started_at": "2026-01-01T00:00:00+00:00",
    })  # fmt: skip


def test_no_worker_online_every_queue_is_counted_empty_and_warned_of(
    app: Flask, client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    cpu, gpu = settings.queues.cpu, settings.queues.gpu
    listed = client.get("/v1/workers", headers=auth).json
    assert listed == {"workers": [], "queues": {cpu: {"workers": 0}, gpu: {"workers": 0}}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["warnings"] == [
        f"no worker serves queue {cpu}: jobs sent there wait",
        f'no worker serves queue {gpu}: jobs sent there (device "gpu") wait',
    ]


def test_workers_are_counted_by_the_queue_they_consume(
    app: Flask, client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    cpu, gpu = settings.queues.cpu, settings.queues.gpu
    register(app, "one", cpu)
    register(app, "two", cpu)
    listed = client.get("/v1/workers", headers=auth).json
    assert len(listed["workers"]) == 2
    assert listed["queues"] == {cpu: {"workers": 2}, gpu: {"workers": 0}}
    ready = client.get("/readyz").json
    assert ready["status"] == "ready"
    assert ready["warnings"] == [
        f'no worker serves queue {gpu}: jobs sent there (device "gpu") wait'
    ]
    register(app, "three", gpu)
    assert client.get("/readyz").json["warnings"] == []
