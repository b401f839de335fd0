"""Model memory over HTTP: each API process holds the latest and every
labelled version of every model within FITSERVE_MODEL_CACHE_BYTES; past it,
the least recently used are dropped and loaded again on demand, and a
readiness question (V2 model ready, TF Serving's version status) loads the
version it asks about, so a client that polls ready is never told false
for a model it can use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ByteSize

from models.settings import MIN_MODEL_CACHE_BYTES, Settings, settings_or_exit
from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore
from service.app import create_app
from tests.models.serving.test_predictor import X, publish, publish_broken

WAIT_S = 120.0
ROWS = {"instances": X[:1].tolist()}


def copies(store: ModelStore, names: list[str], source: str = "m") -> None:
    """Publish version 1 of `source` again under each of `names` (a real
    publish of a trained file, without training it again)."""
    path = store.model_file(source, 1)
    metadata = store.metadata(source, 1)  # its serving record included
    for field in ("name", "version", "model_sha256"):
        metadata.pop(field)
    for name in names:
        store.publish(name, lambda target: shutil.copyfile(path, target), metadata)


def started(settings: Settings) -> tuple[Flask, FlaskClient]:
    app = create_app(settings)
    assert app.extensions["fitserve"].predictor.warmup.wait(WAIT_S)
    return app, app.test_client()


def held(app: Flask) -> list[tuple[str, int]]:
    return sorted(app.extensions["fitserve"].predictor.memory.keys())


def one_version_bytes(settings: Settings) -> int:
    """What one of the test's versions takes in the model memory."""
    app, _ = started(settings)
    return app.extensions["fitserve"].predictor.memory.held_bytes


def test_the_latest_and_labelled_versions_are_loaded_at_start(
    settings: Settings, auth: dict[str, str]
) -> None:
    store = ModelStore(open_blobs(settings))
    for _ in range(3):
        publish(store)
    app, client = started(settings)
    assert client.put("/v1/models/m/labels/stable", json={"version": 1},
                      headers=auth).status_code == 200  # fmt: skip
    # A process started after the label moved loads it with the latest.
    _, fresh = started(settings)
    later = fresh.application
    assert held(later) == [("m", 1), ("m", 3)]
    answer = fresh.post("/v1/models/m/labels/stable:predict", json=ROWS, headers=auth)
    assert answer.headers["Fitserve-Model-Version"] == "1"
    # The process that moved the label loads the labelled version at once.
    predictor = app.extensions["fitserve"].predictor
    assert predictor.ready("m", 1, wait_s=WAIT_S) is not None


def room_for_three(settings: Settings, others: list[str]) -> int:
    """Model `m` and a copy named each of `others` published, and the model
    memory set to hold three of them: what one holds."""
    store = ModelStore(open_blobs(settings))
    publish(store)
    each = one_version_bytes(settings)
    copies(store, others)
    settings.model_cache_bytes = ByteSize(3 * each + each // 2)
    return each


def test_past_the_budget_versions_load_on_demand_and_on_the_ready_question(
    settings: Settings, auth: dict[str, str]
) -> None:
    each = room_for_three(settings, ["a", "b", "c", "d", "e"])
    app, client = started(settings)
    predictor = app.extensions["fitserve"].predictor
    assert predictor.loaded_count() == 3
    (warning,) = [text for text in client.get("/readyz").json["warnings"] if "memory" in text]
    assert warning.startswith("3 versions not loaded at start: the model memory"), warning
    left_out = sorted({"a", "b", "c", "d", "e", "m"} - {name for name, _ in held(app)})

    # Asked whether it is ready, a model outside the budget loads and says yes.
    first = left_out[0]
    ready = client.get(f"/v2/models/{first}/ready", headers=auth)
    assert ready.status_code == 200 and ready.json["ready"] is True, ready.json
    status = client.get(f"/v1/models/{left_out[1]}", headers=auth).json
    assert status["model_version_status"][0]["state"] == "AVAILABLE", status
    # ...and every request is answered, the least recently used making room.
    for name in ["a", "b", "c", "d", "e", "m"] * 2:
        answer = client.post(f"/v1/models/{name}:predict", json=ROWS, headers=auth)
        assert answer.status_code == 200, answer.json
    assert predictor.loaded_count() == 3 and predictor.memory.held_bytes <= 3 * each + each // 2
    assert predictor.memory.evictions >= 6


def test_a_model_published_while_the_memory_is_full_is_ready_when_asked(
    settings: Settings, auth: dict[str, str]
) -> None:
    room_for_three(settings, ["a", "b"])
    app, client = started(settings)
    assert len(held(app)) == 3
    copies(app.extensions["fitserve"].models, ["new"])  # announced through Redis
    ready = client.get("/v2/models/new/versions/1/ready", headers=auth)
    assert ready.status_code == 200 and ready.json == {"name": "new", "version": "1",
                                                       "ready": True}  # fmt: skip
    assert ("new", 1) in held(app) and len(held(app)) == 3


def test_a_version_larger_than_the_whole_budget_is_refused_with_the_reason(
    settings: Settings, auth: dict[str, str]
) -> None:
    store = ModelStore(open_blobs(settings))
    publish(store)
    settings.model_cache_bytes = MIN_MODEL_CACHE_BYTES
    app = create_app(settings)
    predictor = app.extensions["fitserve"].predictor
    assert predictor.warmup.wait(WAIT_S)
    predictor.memory.budget_bytes = 1000  # as if the model were larger than any budget
    predictor.memory.drop(lambda key: True)
    client = app.test_client()
    answer = client.post("/v1/models/m:predict", json=ROWS, headers=auth)
    assert answer.status_code == 503
    assert "more than the model memory of an API process holds (1,000 bytes, setting " \
           "FITSERVE_MODEL_CACHE_BYTES)" in answer.json["error"]["message"]  # fmt: skip
    status = client.get("/v1/models/m/versions/1", headers=auth).json["model_version_status"][0]
    assert status["state"] == "END" and "FITSERVE_MODEL_CACHE_BYTES" in status["status"][
        "error_message"]  # fmt: skip


def test_the_version_status_says_why_a_version_did_not_load(
    settings: Settings, auth: dict[str, str]
) -> None:
    store = ModelStore(open_blobs(settings))
    publish(store)
    publish_broken(store)
    _, client = started(settings)
    (good,) = client.get("/v1/models/m/versions/1", headers=auth).json["model_version_status"]
    assert good == {"version": "1", "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""}}  # fmt: skip
    (broken,) = client.get("/v1/models/m/versions/2", headers=auth).json["model_version_status"]
    assert broken["state"] == "END" and broken["status"]["error_code"] == "UNKNOWN"
    assert broken["status"]["error_message"], broken


def test_a_deleted_version_leaves_the_memory(settings: Settings, auth: dict[str, str]) -> None:
    store = ModelStore(open_blobs(settings))
    publish(store)
    publish(store)
    app, client = started(settings)
    predictor = app.extensions["fitserve"].predictor
    assert client.post("/v1/models/m/versions/1:predict", json=ROWS,
                       headers=auth).status_code == 200  # fmt: skip
    assert held(app) == [("m", 1), ("m", 2)]
    # The route lists the model again, as the announcement makes every process do.
    assert client.delete("/v1/models/m/versions/1", headers=auth).status_code == 204
    assert held(app) == [("m", 2)] and predictor.loaded_count() == 1


def test_a_budget_too_small_for_one_model_is_a_start_up_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FITSERVE_MODEL_CACHE_BYTES", "64KiB")
    with pytest.raises(SystemExit) as stopped:
        settings_or_exit("fitserve-api")
    message = str(stopped.value)
    assert message.startswith("fitserve-api: the settings are not valid:"), message
    assert "FITSERVE_MODEL_CACHE_BYTES: 65,536 bytes is too small for even one model" in message
    monkeypatch.setenv("FITSERVE_MODEL_CACHE_BYTES", "2GiB")
    assert settings_or_exit("fitserve-api").model_cache_bytes == 2 * 2**30
