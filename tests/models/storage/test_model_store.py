"""The model store: `<root>/<name>/<version>/` folders published by atomic rename."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from models.errors import NotFound
from models.storage.model_store import METADATA_FILE, MODEL_FILE, ModelStore
from service.errors import http_status


def writer(content: bytes = b"model bytes"):
    def write_model(path: Path) -> None:
        path.write_bytes(content)

    return write_model


def failing_writer(path: Path) -> None:
    path.write_bytes(b"half a model")
    raise RuntimeError("disk full")


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def leftovers(store: ModelStore, name: str) -> list[str]:
    """Entries in a model's folder that are not published versions (or the
    markers that keep deleted version numbers retired)."""
    folder = store.root / name
    return sorted(
        entry.name for entry in folder.iterdir()
        if not entry.name.isdigit() and not entry.name.startswith(".retired-")
    )  # fmt: skip


def test_publish_creates_version_1_then_2_with_model_and_metadata(store):
    assert store.publish("sonar", writer(b"first"), {"accuracy": 0.8}) == 1
    assert store.publish("sonar", writer(b"second"), {"accuracy": 0.9}) == 2

    for version, content, accuracy in [(1, b"first", 0.8), (2, b"second", 0.9)]:
        folder = store.root / "sonar" / str(version)
        assert (folder / MODEL_FILE).read_bytes() == content
        metadata = json.loads((folder / METADATA_FILE).read_text())
        assert metadata == {"accuracy": accuracy, "name": "sonar", "version": version,
                            "model_sha256": hashlib.sha256(content).hexdigest()}  # fmt: skip
        assert store.model_path("sonar", version) == folder / MODEL_FILE
        assert store.metadata("sonar", version) == metadata
    assert leftovers(store, "sonar") == []


def test_versions_latest_and_resolve(store):
    assert store.versions("iris") == []
    assert store.latest_version("iris") is None
    for _ in range(3):
        store.publish("iris", writer(), {})
    assert store.versions("iris") == [1, 2, 3]
    assert store.latest_version("iris") == 3
    assert store.resolve("iris", None) == 3
    assert store.resolve("iris", 2) == 2


def test_versions_sort_numerically(store):
    for _ in range(10):
        store.publish("m", writer(), {})
    assert store.versions("m")[-2:] == [9, 10]
    assert store.resolve("m", None) == 10


def test_unknown_model_is_not_found(store):
    with pytest.raises(NotFound) as caught:
        store.resolve("nobody", None)
    assert http_status(caught.value) == 404
    assert "'nobody'" in caught.value.message
    with pytest.raises(NotFound):
        store.metadata("nobody", 1)


def test_unknown_version_is_not_found(store):
    store.publish("iris", writer(), {})
    with pytest.raises(NotFound) as caught:
        store.resolve("iris", 7)
    assert "version 7" in caught.value.message
    assert "[1]" in caught.value.message
    with pytest.raises(NotFound):
        store.model_path("iris", 7)


def test_failed_write_leaves_no_version_and_no_temp_folder(store):
    store.publish("sonar", writer(), {})
    with pytest.raises(RuntimeError, match="disk full"):
        store.publish("sonar", failing_writer, {})
    assert store.versions("sonar") == [1]
    assert leftovers(store, "sonar") == []


def test_failed_first_write_publishes_nothing(store):
    with pytest.raises(RuntimeError):
        store.publish("sonar", failing_writer, {})
    assert store.versions("sonar") == []
    assert store.names() == []
    assert leftovers(store, "sonar") == []


def test_publish_takes_the_next_number_when_a_racer_won(store, monkeypatch):
    store.publish("sonar", writer(b"mine v1"), {})
    # Another publisher renames its complete version 2 into place after we read
    # "latest is 1": our rename onto 2 fails and we must take 3.
    racer = store.root / "sonar" / "2"
    racer.mkdir()
    (racer / MODEL_FILE).write_bytes(b"racer")
    monkeypatch.setattr(store, "latest_version", lambda name: 1)

    assert store.publish("sonar", writer(b"mine v2"), {"who": "me"}) == 3
    assert (racer / MODEL_FILE).read_bytes() == b"racer"
    assert (store.root / "sonar" / "3" / MODEL_FILE).read_bytes() == b"mine v2"
    digest = hashlib.sha256(b"mine v2").hexdigest()
    expected = {"who": "me", "name": "sonar", "version": 3, "model_sha256": digest}
    assert store.metadata("sonar", 3) == expected
    assert leftovers(store, "sonar") == []


def test_publish_counts_a_pre_existing_version_folder(store):
    racer = store.root / "sonar" / "1"
    racer.mkdir(parents=True)
    (racer / MODEL_FILE).write_bytes(b"racer")
    assert store.publish("sonar", writer(), {}) == 2
    assert (racer / MODEL_FILE).read_bytes() == b"racer"


def test_delete_removes_a_version(store):
    for _ in range(3):
        store.publish("iris", writer(), {})
    store.delete("iris", 2)
    assert store.versions("iris") == [1, 3]
    assert not (store.root / "iris" / "2").exists()
    assert leftovers(store, "iris") == []
    with pytest.raises(NotFound):
        store.resolve("iris", 2)
    with pytest.raises(NotFound):
        store.delete("iris", 2)


def test_names_lists_only_published_models(store):
    store.publish("iris", writer(), {})
    store.publish("digits", writer(), {})
    with pytest.raises(RuntimeError):
        store.publish("broken", failing_writer, {})
    store.publish("gone", writer(), {})
    store.delete("gone", 1)
    (store.root / "Not_A_Name").mkdir()
    (store.root / "Not_A_Name" / "1").mkdir()
    (store.root / ".hidden" / "1").mkdir(parents=True)
    assert store.names() == ["digits", "iris"]


def test_names_of_a_missing_root_is_empty(tmp_path):
    assert ModelStore(tmp_path / "nowhere").names() == []


@pytest.mark.parametrize(
    "name", ["../x", "..", "a/b", "/etc", "x/../../y", "", "UPPER", ".tmp-x", "a" * 65, "iris\n"]
)
def test_invalid_names_never_touch_the_filesystem(tmp_path, name):
    root = tmp_path / "store" / "models"
    store = ModelStore(root)
    calls: list[Path] = []

    with pytest.raises(ValueError, match="Model names"):
        store.publish(name, calls.append, {})
    assert calls == []
    assert store.versions(name) == []
    assert store.latest_version(name) is None
    with pytest.raises(NotFound):
        store.resolve(name, None)
    with pytest.raises(NotFound):
        store.delete(name, 1)
    assert list(tmp_path.iterdir()) == []


def test_traversal_name_cannot_reach_a_sibling_folder(tmp_path):
    # A folder that looks like a published model next to the store.
    outside = tmp_path / "x" / "1"
    outside.mkdir(parents=True)
    (outside / MODEL_FILE).write_bytes(b"secret")
    store = ModelStore(tmp_path / "models")
    assert store.versions("../x") == []
    with pytest.raises(NotFound):
        store.model_path("../x", 1)
    with pytest.raises(NotFound):
        store.delete("../x", 1)
    assert (outside / MODEL_FILE).read_bytes() == b"secret"


def test_a_deleted_version_number_is_never_published_again(store):
    store.publish("iris", writer(), {})
    store.publish("iris", writer(), {})
    store.delete("iris", 2)
    assert store.publish("iris", writer(), {}) == 3
    assert store.versions("iris") == [1, 3]
