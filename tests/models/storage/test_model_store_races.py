"""Deletes racing deletes and listings, and damaged manifests, on a folder and
on a bucket: a client sees a 404 or the versions that are whole, never a
server error, and one bad version does not hide the others."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from models.errors import DamagedStore, NotFound
from models.storage.blobs import FolderBlobs
from models.storage.model_store import CLAIM_FILE, MANIFEST_FILE, ModelStore, adopt_earlier_layout
from service.errors import http_status
from tests.models.storage.conftest import another_host


def write_model(path: Path) -> None:
    path.write_bytes(b"model bytes")


def run_together(*actions: Callable[[], object]) -> list[BaseException]:
    """Start every action at once on its own thread; the errors they raised."""
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        barrier.wait()
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - the caller looks at them
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_deletes_of_one_version_at_once_end_in_a_delete_and_a_404(blobs, tmp_path):
    rounds = 6 if isinstance(blobs, FolderBlobs) else 3
    store = ModelStore(blobs)
    other = ModelStore(another_host(blobs, tmp_path / "host-2"))
    store.publish("race", write_model, {"task": "binary"})  # a version that stays
    for _ in range(rounds):
        version = store.publish("race", write_model, {"task": "binary"})
        errors = run_together(lambda v=version: store.delete("race", v),
                              lambda v=version: other.delete("race", v))  # fmt: skip
        # Both may finish (each saw the version), or the later one is a 404.
        assert all(isinstance(error, NotFound) for error in errors), errors
        assert store.versions("race") == [1]
        claim = json.loads(blobs.get(f"models/race/{version}/{CLAIM_FILE}"))
        assert claim["deleted"] is True
        with pytest.raises(NotFound, match="deleted|no version"):
            store.delete("race", version)
    assert store.publish("race", write_model, {"task": "binary"}) == rounds + 2


def test_the_second_delete_says_the_version_was_deleted(blobs):
    store = ModelStore(blobs)
    store.publish("iris", write_model, {})
    store.delete("iris", 1)
    with pytest.raises(NotFound) as caught:
        store.delete("iris", 1)
    assert "version 1" in caught.value.message and "deleted" in caught.value.message


def test_a_corrupt_manifest_is_a_damaged_store_error_naming_it(blobs, caplog):
    store = ModelStore(blobs)
    for _ in range(3):
        store.publish("iris", write_model, {"task": "binary"})
    for damaged in (b'{"name": "iris", "vers', b"[1, 2]", "\u00e9t\u00e9".encode("latin-1")):
        blobs.put(f"models/iris/3/{MANIFEST_FILE}", damaged)
        # A clear server-side error that names the object, not a JSON traceback.
        with pytest.raises(DamagedStore, match="models/iris/3/manifest.json") as caught:
            store.metadata("iris", 3)
        assert http_status(caught.value) == 500
    assert store.versions("iris") == [1, 2, 3] and store.names() == ["iris"]
    assert store.metadata("iris", 2)["version"] == 2
    # A damaged version can be deleted, and so can one whose claim is damaged.
    store.delete("iris", 3)
    blobs.put(f"models/iris/2/{CLAIM_FILE}", b"not json")
    blobs.put(f"models/iris/2/{CLAIM_FILE}", b"not json")
    store.delete("iris", 2)
    assert store.versions("iris") == [1]
    assert store.publish("iris", write_model, {}) == 4


def test_a_corrupt_metadata_json_of_the_earlier_layout_is_skipped_and_logged(tmp_path, caplog):
    models = tmp_path / "models" / "iris"
    for version in (1, 2):
        (models / str(version)).mkdir(parents=True)
        (models / str(version) / "model.keras").write_bytes(b"model")
    (models / "1" / "metadata.json").write_text(json.dumps({"name": "iris", "version": 1}))
    (models / "2" / "metadata.json").write_text('{"name": "iris", "ver')
    with caplog.at_level(logging.WARNING):
        assert adopt_earlier_layout(FolderBlobs(tmp_path)) == ["models/iris/1"]
    assert "models/iris/2/metadata.json" in caplog.text
    assert ModelStore(FolderBlobs(tmp_path)).versions("iris") == [1]
    assert ModelStore(FolderBlobs(tmp_path)).publish("iris", write_model, {}) == 3
