"""Warm before ready, over HTTP: `/readyz`, `/v2/health/ready` and V2 model
ready wait for the start-up load and warm-up of each model's latest version
(`/healthz` never does); a broken model does not hold readiness; a version
published later is loaded and warmed aside, the version in hand answering
until it is ready.

Loads are made slow deterministically: `load_version` (the real one, on the
real store) waits on an event the test sets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from models.serving import predictor as predictor_module
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore
from service.app import create_app
from tests.models.serving.test_predictor import X, publish, publish_broken

HELD_S = 120.0  # a held load goes on by itself after this (a failing test never hangs)
WAIT_S = 120.0


class Gate:
    """Holds the loads of chosen (name, version)s until `release`."""

    def __init__(self) -> None:
        self.held: set[tuple[str, int]] = set()
        self.started: dict[tuple[str, int], threading.Event] = {}
        self.open: dict[tuple[str, int], threading.Event] = {}

    def hold(self, name: str, version: int) -> None:
        key = (name, version)
        self.held.add(key)
        self.started[key], self.open[key] = threading.Event(), threading.Event()

    def wait_started(self, name: str, version: int) -> None:
        assert self.started[(name, version)].wait(WAIT_S), f"{name} v{version} never loaded"

    def release(self, name: str, version: int) -> None:
        self.open[(name, version)].set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    real = predictor_module.load_version

    def load_version(store: ModelStore, name: str, version: int) -> Any:
        key = (name, version)
        if key in gate.held:
            gate.started[key].set()
            gate.open[key].wait(HELD_S)
        return real(store, name, version)

    monkeypatch.setattr(predictor_module, "load_version", load_version)
    yield gate
    for event in gate.open.values():
        event.set()


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (result := condition()):
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
        time.sleep(0.05)
    return result


def model_warnings(client: FlaskClient, headers: dict[str, str] | None = None) -> list[str]:
    ready = client.get("/readyz", headers=headers or {})
    assert ready.status_code == 200, ready.json
    return [text for text in ready.json["warnings"] if "model" in text]


def test_not_ready_until_the_latest_versions_are_loaded_and_warm(
    settings: Settings, gate: Gate, auth: dict[str, str]
) -> None:
    store = ModelStore(open_blobs(settings))
    publish(store, name="fast")
    publish(store, name="slow")
    gate.hold("slow", 1)
    app = create_app(settings)
    client = app.test_client()
    gate.wait_started("slow", 1)

    assert client.get("/healthz").status_code == 200  # alive all along
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["reasons"] == ["warming up: 1 of 2 models loaded"]
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/ready").json == {"ready": False}
    for path in ("/v2/models/slow/ready", "/v2/models/slow/versions/1/ready"):
        response = client.get(path, headers=auth)
        assert (response.status_code, response.json) == (503, {"name": "slow", "ready": False})
    fast = client.get("/v2/models/fast/ready", headers=auth)
    assert (fast.status_code, fast.json["version"]) == (200, "1")

    gate.release("slow", 1)
    assert app.extensions["fitserve"].predictor.warmup.wait(WAIT_S)
    assert model_warnings(client) == []
    assert client.get("/v2/health/ready").json == {"ready": True}
    ready_model = client.get("/v2/models/slow/versions/1/ready", headers=auth)
    assert ready_model.status_code == 200
    assert ready_model.json == {"name": "slow", "version": "1", "ready": True}
    predicted = client.post("/v1/models/slow:predict", json={"instances": X.tolist()},
                            headers=auth)  # fmt: skip
    assert predicted.status_code == 200 and len(predicted.json["labels"]) == len(X)


def test_a_broken_model_does_not_hold_readiness(
    settings: Settings, gate: Gate, auth: dict[str, str]
) -> None:
    store = ModelStore(open_blobs(settings))
    publish(store, name="good")
    publish_broken(store, name="broken")
    app = create_app(settings)
    client = app.test_client()
    assert app.extensions["fitserve"].predictor.warmup.wait(WAIT_S)

    (anonymous,) = model_warnings(client)
    assert anonymous == (
        "model 'broken' failed to load at start and is not served until a version loads"
    )
    (detailed,) = model_warnings(client, auth)
    assert detailed.startswith(anonymous + ": ") and "version 1 failed to load" in detailed
    assert client.get("/v2/health/ready").json == {"ready": True}
    assert client.get("/v2/models/good/ready", headers=auth).status_code == 200
    # Asked again, it is tried again in the background (after a pause), never waited on.
    broken = client.get("/v2/models/broken/ready", headers=auth)
    assert (broken.status_code, broken.json["ready"]) == (503, False)


def test_a_version_published_later_is_warmed_before_it_takes_traffic(
    settings: Settings, gate: Gate, auth: dict[str, str]
) -> None:
    app = create_app(settings)
    client = app.test_client()
    # No models: listed at start, ready at once.
    assert client.get("/readyz").status_code == 200
    parts = app.extensions["fitserve"]
    # Subscribed to the announcements (an earlier publish is found by a poll only).
    wait_until(lambda: parts.catalog.subscriptions, "the catalog's subscription")

    # A new model: loaded on the announcement of its publish, not on a request.
    gate.hold("m", 1)
    publish(parts.models)
    gate.wait_started("m", 1)
    assert client.get("/v2/models/m/ready", headers=auth).status_code == 503
    assert client.get("/readyz").status_code == 200  # the process stays ready
    gate.release("m", 1)
    wait_until(lambda: parts.predictor.ready("m"), "version 1 warm")

    # A new version: loaded aside while version 1 answers.
    gate.hold("m", 2)
    publish(parts.models)
    gate.wait_started("m", 2)
    predicted = client.post("/v1/models/m:predict", json={"instances": X.tolist()},
                            headers=auth)  # fmt: skip
    assert predicted.headers["Fitserve-Model-Version"] == "1"
    assert client.get("/v2/models/m/versions/2/ready", headers=auth).status_code == 503
    assert client.get("/v2/models/m/ready", headers=auth).json["version"] == "1"
    gate.release("m", 2)
    wait_until(lambda: client.get("/v2/models/m/ready", headers=auth).json["version"] == "2",
               "version 2 warm")  # fmt: skip
    predicted = client.post("/v1/models/m:predict", json={"instances": X.tolist()},
                            headers=auth)  # fmt: skip
    assert predicted.headers["Fitserve-Model-Version"] == "2"


def test_a_ready_question_that_joins_a_load_with_no_room_loads_it_itself(
    settings: Settings, gate: Gate, auth: dict[str, str]
) -> None:
    """The keeper loads a new model only where it fits beside the versions
    kept loaded; a question (or request) that joined that load then loads
    it itself, making room."""
    store = ModelStore(open_blobs(settings))
    publish(store, name="a")
    app = create_app(settings)
    parts = app.extensions["fitserve"]
    assert parts.predictor.warmup.wait(WAIT_S)
    parts.predictor.memory.budget_bytes = parts.predictor.memory.held_bytes  # full
    wait_until(lambda: parts.catalog.subscriptions, "the catalog's subscription")
    gate.hold("b", 1)
    publish(parts.models, name="b")  # announced: the keeper starts loading it
    gate.wait_started("b", 1)
    answers: list[int] = []
    asking = threading.Thread(target=lambda: answers.append(
        app.test_client().get("/v2/models/b/ready", headers=auth).status_code))  # fmt: skip
    asking.start()
    wait_until(lambda: asking.is_alive(), "the question")
    gate.release("b", 1)  # the keeper's load finds no room
    asking.join(WAIT_S)
    assert answers == [200]
    assert parts.predictor.memory.keys() == [("b", 1)]
