"""Version labels (TF Serving's): moves and their history, routes through a
label, the 409 on deleting a labelled version, roles, a move racing a delete,
a move seen by another API process, and labels served while Redis is down."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.errors import ValidationFailed
from models.settings import Settings
from service.app import create_app
from service.routes.version_labels import version_labels
from tests.conftest import API_KEY
from tests.own_redis import HAS_REDIS_SERVER, OwnRedis

X = np.random.default_rng(7).normal(size=(40, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"},
               {"type": "dense", "units": 2, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 2, "batch_size": 8},
    "seed": 0,
}  # fmt: skip
BODY = json.dumps({"x": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()}).encode()
PREDICT_KEY = "predict-key-0123456789"


def more_versions(app: Flask, name: str, count: int) -> list[int]:
    """Publish `count` more versions of `name` through the store, each a copy
    of version 1 with different weights (a real publish, without training)."""
    import keras

    store = app.extensions["fitserve"].models
    metadata = store.metadata(name, 1)
    for field in ("job", "name", "version", "model_sha256", "files"):
        metadata.pop(field, None)
    model = keras.saving.load_model(store.model_file(name, 1), safe_mode=True)
    published = []
    for index in range(count):
        weights = [w + 0.1 * (index + 1) for w in model.get_weights()]
        model.set_weights(weights)
        published.append(store.publish(name, model.save, metadata))
    # This process's catalog hears of them through Redis a moment later; the
    # test asks at once (as the delete route does after deleting).
    app.extensions["fitserve"].catalog.refresh(name)
    return published


Outcome = tuple[int, int]


def race_move_and_delete(app: Flask, auth: dict[str, str], name: str, version: int) -> Outcome:
    """PUT a label onto `version` and DELETE the version at once, from two
    threads (two requests of one process, as a threaded server runs them)."""
    start = threading.Barrier(2)
    answers: dict[str, int] = {}

    def move() -> None:
        client = app.test_client()
        start.wait()
        answers["move"] = client.put(
            f"/v1/models/{name}/labels/race", json={"version": version}, headers=auth
        ).status_code

    def delete() -> None:
        client = app.test_client()
        start.wait()
        answers["delete"] = client.delete(
            f"/v1/models/{name}/versions/{version}", headers=auth
        ).status_code

    threads = [threading.Thread(target=move), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers["move"], answers["delete"]


@pytest.fixture
def labelled(app: Flask, publish: Callable[..., dict[str, Any]]) -> str:
    """A model `lab` with versions 1 and 2."""
    publish("lab", SPEC, BODY, "application/json")
    assert more_versions(app, "lab", 1) == [2]
    return "lab"


def test_moves_are_listed_and_recorded_with_time_and_role(
    client: FlaskClient, auth: dict[str, str], labelled: str
) -> None:
    first = client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 1}, headers=auth)
    assert first.status_code == 200, first.json
    assert first.json["version"] == 1 and first.json["label"] == "stable"
    assert first.json["previous"] is None
    moved = client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 2}, headers=auth)
    assert moved.status_code == 200 and moved.json["previous"] == 1, moved.json
    client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 2}, headers=auth)
    # Pointing it where it points already is no move: nothing is recorded.
    client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 2}, headers=auth)

    listing = client.get(f"/v1/models/{labelled}/labels", headers=auth)
    assert listing.json == {"labels": {"canary": 2, "stable": 2}}
    shown = client.get(f"/v1/models/{labelled}/labels/stable", headers=auth).json
    assert shown["version"] == 2
    assert shown["model_version_status"][0]["version"] == "2"  # TF Serving's status too
    history = shown["history"]
    assert [(move["from"], move["to"], move["role"]) for move in history] == [
        (None, 1, "full"), (1, 2, "full"),
    ]  # fmt: skip
    assert all(move["time"].endswith("Z") for move in history)
    assert API_KEY not in json.dumps(history)
    canary = client.get(f"/v1/models/{labelled}/labels/canary", headers=auth).json
    assert len(canary["history"]) == 1
    models = client.get("/v1/models", headers=auth).json["models"]
    assert [model["labels"] for model in models if model["name"] == labelled] == [
        {"canary": 2, "stable": 2}
    ]

    removed = client.delete(f"/v1/models/{labelled}/labels/canary", headers=auth)
    assert removed.status_code == 204
    gone = client.get(f"/v1/models/{labelled}/labels/canary", headers=auth)
    assert gone.status_code == 404 and "'stable'" in gone.json["error"]["message"]
    assert client.get(f"/v1/models/{labelled}/labels", headers=auth).json == {
        "labels": {"stable": 2}
    }
    # Put back, its history shows the delete as a move to null.
    client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 1}, headers=auth)
    back = client.get(f"/v1/models/{labelled}/labels/canary", headers=auth).json["history"]
    assert [(move["from"], move["to"]) for move in back] == [(None, 2), (2, None), (None, 1)]


def test_predict_metadata_and_batch_predict_through_a_label(
    client: FlaskClient, auth: dict[str, str], labelled: str
) -> None:
    client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 1}, headers=auth)
    client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 2}, headers=auth)
    rows = {"instances": X[:5].tolist()}
    for label, version in (("stable", 1), ("canary", 2)):
        through = client.post(f"/v1/models/{labelled}/labels/{label}:predict", json=rows,
                              headers=auth)  # fmt: skip
        assert through.status_code == 200, through.json
        assert through.headers["Fitserve-Model-Version"] == str(version)
        direct = client.post(f"/v1/models/{labelled}/versions/{version}:predict", json=rows,
                             headers=auth)  # fmt: skip
        assert through.json == direct.json
        metadata = client.get(f"/v1/models/{labelled}/labels/{label}/metadata", headers=auth)
        assert metadata.status_code == 200
        assert metadata.json["model_spec"]["version"] == str(version)
    # The two versions differ, so the label did choose.
    ones = client.post(f"/v1/models/{labelled}/versions/1:predict", json=rows, headers=auth)
    twos = client.post(f"/v1/models/{labelled}/versions/2:predict", json=rows, headers=auth)
    assert ones.json != twos.json

    dataset = client.post("/v1/datasets", data=BODY, headers={**auth,
                          "Content-Type": "application/json"})  # fmt: skip
    job = client.post(f"/v1/models/{labelled}/labels/stable:batchPredict",
                      json={"dataset": dataset.json["id"]}, headers=auth)  # fmt: skip
    assert job.status_code == 202, job.json
    assert job.json["version"] == 1  # the job pins the label's version at submit


def test_unknown_labels_versions_and_names_say_what_was_wrong(
    client: FlaskClient, auth: dict[str, str], labelled: str
) -> None:
    client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 1}, headers=auth)
    missing = client.post(f"/v1/models/{labelled}/labels/nightly:predict",
                          json={"instances": X[:1].tolist()}, headers=auth)  # fmt: skip
    assert missing.status_code == 404
    assert "no label 'nightly'" in missing.json["error"]["message"]
    assert "'stable'" in missing.json["error"]["message"]
    for bad in ("Stable", "1st", "a" * 33, "x.y"):
        named = client.get(f"/v1/models/{labelled}/labels/{bad}", headers=auth)
        assert named.status_code == 404, bad
        assert "^[a-z][a-z0-9_-]{0,31}$" in named.json["error"]["message"]

    absent = client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 9},
                        headers=auth)  # fmt: skip
    assert absent.status_code == 422
    assert absent.json["error"]["details"][0]["loc"] == ["version"]
    assert "no version 9" in absent.json["error"]["message"]
    for body in ({"version": "two"}, {"version": 0}, {}, {"version": 1, "extra": 1}):
        invalid = client.put(f"/v1/models/{labelled}/labels/stable", json=body, headers=auth)
        assert invalid.status_code == 422, body
        assert invalid.json["error"]["details"][0]["loc"][0] in ("version", "extra"), body
    nobody = client.put("/v1/models/nobody/labels/stable", json={"version": 1}, headers=auth)
    assert nobody.status_code == 404 and "'nobody'" in nobody.json["error"]["message"]
    unknown = client.delete(f"/v1/models/{labelled}/labels/nightly", headers=auth)
    assert unknown.status_code == 404 and "nightly" in unknown.json["error"]["message"]
    # Nothing above moved the label.
    assert client.get(f"/v1/models/{labelled}/labels", headers=auth).json == {
        "labels": {"stable": 1}
    }


def test_a_labelled_version_cannot_be_deleted(
    app: Flask, client: FlaskClient, auth: dict[str, str], labelled: str
) -> None:
    client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 1}, headers=auth)
    client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 1}, headers=auth)
    refused = client.delete(f"/v1/models/{labelled}/versions/1", headers=auth)
    assert refused.status_code == 409
    error = refused.json["error"]
    assert error["code"] == "conflict"
    assert "'canary'" in error["message"] and "'stable'" in error["message"]
    assert error["details"][0]["loc"] == ["path", "version"]
    assert client.get(f"/v1/models/{labelled}/versions/1", headers=auth).status_code == 200

    client.put(f"/v1/models/{labelled}/labels/stable", json={"version": 2}, headers=auth)
    still = client.delete(f"/v1/models/{labelled}/versions/1", headers=auth)
    assert still.status_code == 409 and "'stable'" not in still.json["error"]["message"]
    client.delete(f"/v1/models/{labelled}/labels/canary", headers=auth)
    deleted = client.delete(f"/v1/models/{labelled}/versions/1", headers=auth)
    assert deleted.status_code == 204
    again = client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 1}, headers=auth)
    assert again.status_code == 422 and again.json["error"]["details"][0]["loc"] == ["version"]
    # Even past a catalog that has not heard of the delete, the label store refuses it.
    with app.app_context(), pytest.raises(ValidationFailed, match="was deleted"):
        version_labels().move(labelled, "canary", 1, "full")
    # A version that is not there is a 404 as before, not a 409.
    assert client.delete(f"/v1/models/{labelled}/versions/7", headers=auth).status_code == 404


def test_a_predict_key_may_use_labels_but_not_move_them(
    settings: Settings, publish: Callable[..., dict[str, Any]], auth: dict[str, str]
) -> None:
    app = create_app(settings.model_copy(update={"api_keys": [API_KEY, f"predict:{PREDICT_KEY}"]}))
    client = app.test_client()
    publish("lab", SPEC, BODY, "application/json")
    assert client.put("/v1/models/lab/labels/stable", json={"version": 1},
                      headers=auth).status_code == 200  # fmt: skip
    predictor = {"Authorization": f"Bearer {PREDICT_KEY}"}
    moved = client.put("/v1/models/lab/labels/stable", json={"version": 1}, headers=predictor)
    assert moved.status_code == 403 and moved.json["error"]["code"] == "forbidden"
    assert client.delete("/v1/models/lab/labels/stable", headers=predictor).status_code == 403
    assert client.get("/v1/models/lab/labels", headers=predictor).json == {"labels": {"stable": 1}}
    assert client.get("/v1/models/lab/labels/stable", headers=predictor).status_code == 200
    predicted = client.post("/v1/models/lab/labels/stable:predict",
                            json={"instances": X[:1].tolist()}, headers=predictor)  # fmt: skip
    assert predicted.status_code == 200
    assert client.post("/v1/models/lab/labels/stable:batchPredict", json={"dataset": "x"},
                       headers=predictor).status_code == 403  # fmt: skip


def test_a_move_racing_a_delete_never_leaves_a_label_on_a_deleted_version(
    app: Flask, auth: dict[str, str], labelled: str
) -> None:
    rounds = 24
    versions = more_versions(app, labelled, rounds)
    outcomes: list[tuple[int, int]] = []
    for version in versions:
        outcome = race_move_and_delete(app, auth, labelled, version)
        # Either the move won (and the delete was refused) or the delete did.
        assert outcome in ((200, 409), (422, 204)), outcome
        outcomes.append(outcome)
        store_versions = app.extensions["fitserve"].models.versions(labelled)
        label = app.test_client().get(f"/v1/models/{labelled}/labels/race", headers=auth)
        if outcome == (200, 409):
            assert label.json["version"] == version and version in store_versions
        else:
            assert version not in store_versions
            assert label.status_code == 404 or label.json["version"] in store_versions
    # Every label left points at a version that exists.
    listing = app.test_client().get(f"/v1/models/{labelled}/labels", headers=auth).json["labels"]
    store_versions = app.extensions["fitserve"].models.versions(labelled)
    assert all(version in store_versions for version in listing.values()), (listing, outcomes)


def test_a_move_through_one_api_process_is_seen_by_another(
    settings: Settings, publish: Callable[..., dict[str, Any]], auth: dict[str, str]
) -> None:
    first = create_app(settings)
    second = create_app(settings)  # another process: its own catalog, labels and caches
    publish("lab", SPEC, BODY, "application/json")
    more_versions(first, "lab", 1)
    rows = {"instances": X[:2].tolist()}
    seen_by_second = second.test_client()
    # The second process reads the label once, before it moves.
    first.test_client().put("/v1/models/lab/labels/stable", json={"version": 1}, headers=auth)
    answer = seen_by_second.post("/v1/models/lab/labels/stable:predict", json=rows, headers=auth)
    assert answer.headers["Fitserve-Model-Version"] == "1"

    first.test_client().put("/v1/models/lab/labels/stable", json={"version": 2}, headers=auth)
    deadline = time.monotonic() + 30  # generous: the contract is 2 s
    while time.monotonic() < deadline:
        answer = seen_by_second.post("/v1/models/lab/labels/stable:predict", json=rows,
                                     headers=auth)  # fmt: skip
        if answer.headers.get("Fitserve-Model-Version") == "2":
            break
        time.sleep(0.05)
    assert answer.headers.get("Fitserve-Model-Version") == "2", answer.json
    listed = seen_by_second.get("/v1/models/lab/labels/stable", headers=auth).json
    assert listed["version"] == 2 and len(listed["history"]) == 2


@pytest.mark.skipif(not HAS_REDIS_SERVER, reason="needs redis-server")
def test_labels_resolve_from_the_last_known_mapping_while_redis_is_down(
    settings: Settings, tmp_path: Path, publish: Callable[..., dict[str, Any]],
    auth: dict[str, str],
) -> None:  # fmt: skip
    publish("lab", SPEC, BODY, "application/json")
    own = OwnRedis(tmp_path)
    own.start()
    app = create_app(settings.model_copy(update={"redis_url": own.url}))
    try:
        client = app.test_client()
        assert client.put("/v1/models/lab/labels/stable", json={"version": 1},
                          headers=auth).status_code == 200  # fmt: skip
        rows = {"instances": X[:2].tolist()}
        before = client.post("/v1/models/lab/labels/stable:predict", json=rows, headers=auth)
        assert before.status_code == 200
        own.kill()
        during = client.post("/v1/models/lab/labels/stable:predict", json=rows, headers=auth)
        assert during.status_code == 200 and during.json == before.json
        assert during.headers["Fitserve-Model-Version"] == "1"
        listing = client.get("/v1/models", headers=auth)
        assert listing.status_code == 200 and listing.json["models"][0]["labels"] == {"stable": 1}
        moved = client.put("/v1/models/lab/labels/stable", json={"version": 1}, headers=auth)
        assert moved.status_code == 503 and "Redis" in moved.json["error"]["message"]
        # The last known mapping answers for the model's other labels too.
        never = client.post("/v1/models/lab/labels/canary:predict", json=rows, headers=auth)
        assert never.status_code == 404 and "'stable'" in never.json["error"]["message"]
        # A model whose labels this process never read cannot be answered for.
        unread = client.post("/v1/models/other/labels/stable:predict", json=rows, headers=auth)
        assert unread.status_code == 503
    finally:
        app.extensions["fitserve"].catalog.close()  # its subscriber would retry for good
        if own.server is not None and own.server.process.poll() is None:
            own.kill()


def test_v2_takes_a_label_in_its_version_segment(
    client: FlaskClient, auth: dict[str, str], labelled: str
) -> None:
    moved = client.put(f"/v1/models/{labelled}/labels/canary", json={"version": 2}, headers=auth)
    assert moved.status_code == 200, moved.json
    tensor = {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": X[:2].ravel().tolist()}
    body = {"inputs": [tensor]}
    through = client.post(f"/v2/models/{labelled}/versions/canary/infer", json=body, headers=auth)
    assert through.status_code == 200, through.json
    assert through.json["model_version"] == "2"
    direct = client.post(f"/v2/models/{labelled}/versions/2/infer", json=body, headers=auth)
    assert through.json["outputs"] == direct.json["outputs"]
    ready = client.get(f"/v2/models/{labelled}/versions/canary/ready", headers=auth)
    assert ready.status_code == 200
    metadata = client.get(f"/v2/models/{labelled}/versions/canary", headers=auth)
    assert metadata.status_code == 200 and metadata.json["name"] == labelled
    missing = client.post(f"/v2/models/{labelled}/versions/nightly/infer", json=body,
                          headers=auth)  # fmt: skip
    assert missing.status_code == 404 and "nightly" in json.dumps(missing.json)
    bad = client.get(f"/v2/models/{labelled}/versions/Not-A-Label/ready", headers=auth)
    assert bad.status_code == 404 and "labels" in json.dumps(bad.json)


@pytest.mark.skipif(not HAS_REDIS_SERVER, reason="needs redis-server")
def test_predictions_never_wait_on_a_redis_that_hangs(
    settings: Settings, tmp_path: Path, publish: Callable[..., dict[str, Any]],
    auth: dict[str, str],
) -> None:  # fmt: skip
    """By version, latest and label, V1 and V2, a model in memory is answered
    from memory alone: with Redis stopped and a socket timeout of ten minutes,
    a request that sent Redis anything would wait for it."""
    publish("lab", SPEC, BODY, "application/json")
    own = OwnRedis(tmp_path)
    own.start()
    patient = settings.redis.model_copy(update={"socket_timeout_s": 600.0})
    app = create_app(settings.model_copy(update={"redis_url": own.url, "redis": patient}))
    predictor = app.extensions["fitserve"].predictor
    try:
        assert predictor.warmup.wait(120)
        client = app.test_client()
        assert client.put("/v1/models/lab/labels/stable", json={"version": 1},
                          headers=auth).status_code == 200  # fmt: skip
        rows = {"instances": X[:1].tolist()}
        tensor = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                              "data": X[:1].ravel().tolist()}]}  # fmt: skip
        requests = [
            ("/v1/models/lab:predict", rows),
            ("/v1/models/lab/versions/1:predict", rows),
            ("/v1/models/lab/labels/stable:predict", rows),
            ("/v2/models/lab/infer", tensor),
            ("/v2/models/lab/versions/1/infer", tensor),
            ("/v2/models/lab/versions/stable/infer", tensor),
        ]
        answers: list[int] = []

        def ask_all() -> None:
            for path, body in requests:
                answers.append(client.post(path, json=body, headers=auth).status_code)

        own.pause()
        asking = threading.Thread(target=ask_all, daemon=True)
        asking.start()
        asking.join(60)  # a request that waits on Redis waits ten minutes
        assert answers == [200] * len(requests), answers
    finally:
        own.resume()
        app.extensions["fitserve"].catalog.close()
        own.stop()
