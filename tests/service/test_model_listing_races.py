"""`GET /v1/models` and `DELETE .../versions/{v}` while versions come and go,
and with a damaged manifest in the store, on a folder and on a bucket: 204s,
404s and whole listings, never a 500."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from models.settings import Settings
from models.storage.model_store import MANIFEST_FILE, ModelStore
from service.app import create_app
from service.local_processes import SeaweedFS
from tests.conftest import in_bucket


@pytest.fixture(params=["folder", "s3"])
def store_app(request: pytest.FixtureRequest, settings: Settings) -> Flask:
    if request.param == "s3":
        server: SeaweedFS = request.getfixturevalue("seaweedfs")
        settings = in_bucket(settings, server)
    return create_app(settings.model_copy(update={"preload_models": False}))


def write_model(path: Path) -> None:
    path.write_bytes(b"not loaded by these tests")


def publish(app: Flask, name: str, count: int) -> None:
    for _ in range(count):
        app.extensions["fitserve"].models.publish(name, write_model, {"task": "binary"})


def together(*actions: Callable[[], None]) -> None:
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Callable[[], None]) -> None:
        barrier.wait()
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_deletes_of_one_version_at_once(store_app: Flask, auth: dict[str, str]) -> None:
    rounds = 5 if store_app.extensions["fitserve"].settings.store_url is None else 2
    publish(store_app, "iris", rounds + 1)
    statuses: list[int] = []

    for version in range(2, rounds + 2):

        def delete(version: int = version) -> None:
            response = store_app.test_client().delete(
                f"/v1/models/iris/versions/{version}", headers=auth
            )
            statuses.append(response.status_code)
            assert response.status_code in (204, 404), response.json

        together(delete, delete)
    assert 204 in statuses and set(statuses) <= {204, 404}
    client = store_app.test_client()
    assert client.get("/v1/models/iris", headers=auth).status_code == 200
    assert client.get("/v1/models", headers=auth).json["models"][0]["versions"] == [1]
    gone = client.delete("/v1/models/iris/versions/2", headers=auth)
    assert gone.status_code == 404 and "version 2" in gone.json["error"]["message"]


def test_listings_while_versions_are_deleted(store_app: Flask, auth: dict[str, str]) -> None:
    rounds = 6 if store_app.extensions["fitserve"].settings.store_url is None else 3
    publish(store_app, "iris", rounds + 1)
    publish(store_app, "digits", 1)
    listings: list[dict] = []

    def deleter() -> None:
        client = store_app.test_client()
        for version in range(rounds + 1, 1, -1):  # the latest each time
            response = client.delete(f"/v1/models/iris/versions/{version}", headers=auth)
            assert response.status_code == 204, response.json

    def lister() -> None:
        client = store_app.test_client()
        for _ in range(rounds * 3):
            response = client.get("/v1/models", headers=auth)
            assert response.status_code == 200, response.json
            listings.append({model["name"]: model for model in response.json["models"]})

    together(deleter, lister, lister)
    for listing in listings:
        # iris never drops out while a version of it stays.
        assert sorted(listing) == ["digits", "iris"]
        assert listing["iris"]["latest_version"] == listing["iris"]["versions"][-1]
    final = store_app.test_client().get("/v1/models", headers=auth).json["models"]
    assert [(model["name"], model["versions"]) for model in final] == [
        ("digits", [1]), ("iris", [1])
    ]  # fmt: skip


def test_a_version_deleted_unannounced_is_skipped_in_the_listing(
    store_app: Flask, auth: dict[str, str]
) -> None:
    publish(store_app, "iris", 2)
    client = store_app.test_client()
    assert client.get("/v1/models/iris", headers=auth).json["model_version_status"][0][
        "version"
    ] == "2"  # fmt: skip
    # Deleted on another host whose announcement was lost (Redis away): this
    # process still lists version 2 until its next poll, and finds it gone.
    ModelStore(store_app.extensions["fitserve"].models.blobs).delete("iris", 2)
    listing = client.get("/v1/models", headers=auth)
    assert listing.status_code == 200
    assert [(m["name"], m["latest_version"], m["versions"]) for m in listing.json["models"]] == [
        ("iris", 1, [1])
    ]  # fmt: skip


def test_a_corrupt_manifest_is_skipped_and_logged(
    store_app: Flask, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    publish(store_app, "iris", 3)
    publish(store_app, "digits", 1)
    blobs = store_app.extensions["fitserve"].models.blobs
    blobs.put(f"models/iris/3/{MANIFEST_FILE}", b'{"name": "iris", "vers')
    blobs.put(f"models/digits/1/{MANIFEST_FILE}", b"[1, 2")
    client = store_app.test_client()
    with caplog.at_level(logging.WARNING):
        listing = client.get("/v1/models", headers=auth)
    assert listing.status_code == 200
    assert [(m["name"], m["latest_version"], m["versions"]) for m in listing.json["models"]] == [
        ("iris", 2, [1, 2])
    ]  # fmt: skip
    assert "models/iris/3/manifest.json" in caplog.text
    assert "models/digits/1/manifest.json" in caplog.text
    # The damaged version itself: a 500 that says what is wrong, and it can be deleted.
    damaged = client.get("/v1/models/iris/versions/3/metadata", headers=auth)
    assert damaged.status_code == 500 and "manifest.json" in damaged.json["error"]["message"]
    assert client.delete("/v1/models/iris/versions/3", headers=auth).status_code == 204
