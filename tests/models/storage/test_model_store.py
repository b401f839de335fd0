"""The model store, on a folder and on a bucket: `models/<name>/<version>/`
holds claim.json (the number, taken by a conditional create), model.keras,
and manifest.json (written last: a version exists exactly when it does)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from models.errors import LeaseLost, NotFound
from models.ids import new_job_id
from models.storage.blobs import Blobs, FolderBlobs, S3Blobs
from models.storage.model_store import (
    CLAIM_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ModelStore,
    adopt_earlier_layout,
)
from service.errors import http_status
from tests.models.storage.conftest import another_host


def writer(content: bytes = b"model bytes"):
    def write_model(path: Path) -> None:
        path.write_bytes(content)

    return write_model


def failing_writer(path: Path) -> None:
    path.write_bytes(b"half a model")
    raise RuntimeError("disk full")


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Changes(list):
    """An on_change callback that remembers the names it was told."""

    def __call__(self, name: str) -> None:
        self.append(name)


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def store(blobs: Blobs, changes: Changes) -> ModelStore:
    return ModelStore(blobs, on_change=changes)


class CrashOnce:
    """A store whose first write of a key ending in `suffix` fails, as it
    would if the worker's host died there."""

    def __init__(self, blobs: Blobs, suffix: str) -> None:
        self.blobs = blobs
        self.suffix = suffix
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.blobs, name)

    def _maybe_crash(self, key: str) -> None:
        if key.endswith(self.suffix) and not self.crashed:
            self.crashed = True
            raise ConnectionError(f"the host died writing {key}")

    def put(self, key: str, data: bytes) -> None:
        self._maybe_crash(key)
        self.blobs.put(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._maybe_crash(key)
        self.blobs.put_file(key, path)

    def create(self, key: str, data: bytes) -> bool:
        self._maybe_crash(key)
        return self.blobs.create(key, data)


class Recording:
    """A store that remembers every method called on it."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.blobs, name)
        if callable(attribute):
            self.calls.append(name)
        return attribute


def test_publish_creates_version_1_then_2_with_model_and_manifest(store, blobs):
    assert store.publish("sonar", writer(b"first"), {"accuracy": 0.8}) == 1
    assert store.publish("sonar", writer(b"second!"), {"accuracy": 0.9}) == 2

    for version, content, accuracy in [(1, b"first", 0.8), (2, b"second!", 0.9)]:
        folder = f"models/sonar/{version}"
        assert blobs.get(f"{folder}/{MODEL_FILE}") == content
        manifest = json.loads(blobs.get(f"{folder}/{MANIFEST_FILE}"))
        digest = sha256(content)
        assert manifest == {
            "accuracy": accuracy, "name": "sonar", "version": version, "model_sha256": digest,
            "files": {MODEL_FILE: {"sha256": digest, "bytes": len(content)}},
        }  # fmt: skip
        assert store.manifest("sonar", version) == manifest
        metadata = store.metadata("sonar", version)
        assert "files" not in metadata
        assert metadata == {"accuracy": accuracy, "name": "sonar", "version": version,
                            "model_sha256": digest}  # fmt: skip
        assert json.loads(blobs.get(f"{folder}/{CLAIM_FILE}")) == {"job": None}
        path = store.model_file("sonar", version)
        assert path.read_bytes() == content
        if isinstance(blobs, FolderBlobs):  # the stored file itself
            assert path == blobs.root / folder / MODEL_FILE
        else:  # a copy in this host's cache
            assert isinstance(blobs, S3Blobs)
            assert path == blobs.cache_dir / folder / MODEL_FILE
    # Nothing else: no partial files, no job markers for a publish without a job.
    assert sorted(blobs.keys("")) == [
        f"models/sonar/{version}/{file}"
        for version in (1, 2)
        for file in (CLAIM_FILE, MANIFEST_FILE, MODEL_FILE)
    ]


def test_versions_latest_and_resolve(store):
    assert store.versions("iris") == []
    assert store.latest_version("iris") is None
    for _ in range(10):
        store.publish("iris", writer(), {})
    assert store.versions("iris") == list(range(1, 11))  # numerically: 10 after 9
    assert store.latest_version("iris") == 10
    assert store.resolve("iris", None) == 10
    assert store.resolve("iris", 2) == 2


def test_unknown_models_and_versions_are_not_found(store):
    with pytest.raises(NotFound) as caught:
        store.resolve("nobody", None)
    assert http_status(caught.value) == 404
    assert "'nobody'" in caught.value.message
    assert "Received:" in caught.value.message
    for call in (store.metadata, store.manifest, store.model_file, store.delete):
        with pytest.raises(NotFound, match="Received: 'nobody'"):
            call("nobody", 1)

    store.publish("iris", writer(), {})
    with pytest.raises(NotFound) as caught:
        store.resolve("iris", 7)
    assert "version 7" in caught.value.message
    assert "[1]" in caught.value.message
    assert "Received: version=7" in caught.value.message
    for call in (store.metadata, store.manifest, store.model_file, store.delete):
        with pytest.raises(NotFound, match="Received: version=7"):
            call("iris", 7)


def test_a_failed_write_claims_nothing(store, blobs, changes):
    with pytest.raises(RuntimeError, match="disk full"):
        store.publish("sonar", failing_writer, {})
    assert sorted(blobs.keys("")) == []  # the first publish: nothing at all
    assert store.names() == []
    assert store.publish("sonar", writer(), {}) == 1
    before = sorted(blobs.keys(""))
    with pytest.raises(RuntimeError, match="disk full"):
        store.publish("sonar", failing_writer, {})
    assert sorted(blobs.keys("")) == before
    assert store.versions("sonar") == [1]
    assert changes == ["sonar"]
    assert store.publish("sonar", writer(), {}) == 2


def test_a_failed_upload_burns_its_number_but_publishes_nothing(store, blobs):
    crashing = ModelStore(CrashOnce(blobs, MODEL_FILE))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        crashing.publish("sonar", writer(), {})
    assert store.versions("sonar") == []
    assert store.names() == []
    assert sorted(blobs.keys("")) == [f"models/sonar/1/{CLAIM_FILE}"]
    assert store.publish("sonar", writer(), {}) == 2
    assert store.versions("sonar") == [2]


def test_publish_takes_the_next_number_when_a_racer_won(store, blobs, monkeypatch):
    store.publish("sonar", writer(b"mine v1"), {})
    # Another publisher claims 2 after our listing said "1 is the last": our
    # conditional create of 2 fails and we take 3.
    assert blobs.create(f"models/sonar/2/{CLAIM_FILE}", b'{"job": "racer"}')
    monkeypatch.setattr(store, "_claimed", lambda name: [1])

    assert store.publish("sonar", writer(b"mine v2"), {"who": "me"}) == 3
    assert blobs.get(f"models/sonar/2/{CLAIM_FILE}") == b'{"job": "racer"}'  # untouched
    assert blobs.get(f"models/sonar/3/{MODEL_FILE}") == b"mine v2"
    expected = {"who": "me", "name": "sonar", "version": 3, "model_sha256": sha256(b"mine v2")}
    assert store.metadata("sonar", 3) == expected
    # The racer's number is not a version until its manifest is written.
    assert store.versions("sonar") == [1, 3]


def test_racing_publishers_get_distinct_consecutive_numbers(blobs, tmp_path):
    # Threads on two hosts, each thread with its store of its own. (Kept small
    # on the bucket: SeaweedFS makes contending conditional creates wait on a
    # lock, in steps of about a second.)
    threads, rounds = (8, 3) if isinstance(blobs, FolderBlobs) else (4, 2)
    hosts = [blobs, another_host(blobs, tmp_path / "host-2")]
    barrier = threading.Barrier(threads)
    published: dict[int, bytes] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def publisher(index: int) -> None:
        store = ModelStore(hosts[index % 2])
        barrier.wait()
        try:
            for round_ in range(rounds):
                content = f"publisher {index} round {round_}".encode()
                version = store.publish("race", writer(content), {"by": index})
                with lock:
                    assert version not in published, f"version {version} published twice"
                    published[version] = content
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=publisher, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * rounds
    assert sorted(published) == list(range(1, total + 1))
    store = ModelStore(blobs)
    assert store.versions("race") == list(range(1, total + 1))
    for version, content in published.items():
        assert store.model_file("race", version).read_bytes() == content
        assert store.metadata("race", version)["model_sha256"] == sha256(content)


@pytest.mark.parametrize("crash_at", [MODEL_FILE, MANIFEST_FILE])
def test_a_jobs_retry_finishes_the_version_it_claimed(blobs, tmp_path, crash_at):
    store = ModelStore(blobs)
    store.publish("iris", writer(b"v1"), {})
    job = new_job_id()
    assert store.version_published_by("iris", job) is None

    # The job's first attempt claims 2, then its host dies before the manifest.
    first = ModelStore(CrashOnce(blobs, crash_at))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        first.publish("iris", writer(b"attempt 1"), {"job": job})
    assert json.loads(blobs.get(f"models/iris/jobs/{job}")) == {"version": 2}
    assert json.loads(blobs.get(f"models/iris/2/{CLAIM_FILE}")) == {"job": job}
    assert store.versions("iris") == [1]
    assert store.version_published_by("iris", job) is None  # claimed, not published
    # Meanwhile another publisher takes the next free number.
    assert store.publish("iris", writer(b"other"), {}) == 3

    # The retry, on another host, finishes version 2.
    retry = ModelStore(another_host(blobs, tmp_path / "retry-cache"))
    assert retry.publish("iris", writer(b"attempt 2"), {"job": job, "try": 2}) == 2
    assert store.versions("iris") == [1, 2, 3]
    assert store.version_published_by("iris", job) == 2
    assert store.model_file("iris", 2).read_bytes() == b"attempt 2"
    # The retry wrote a model file of its own, and the first attempt's went.
    assert len([key for key in blobs.keys("models/iris/2/") if key.endswith(".keras")]) == 1
    assert store.metadata("iris", 2) == {
        "job": job, "try": 2, "name": "iris", "version": 2, "model_sha256": sha256(b"attempt 2")
    }  # fmt: skip
    # Once more (a third delivery): still no second version for the job.
    assert retry.publish("iris", writer(b"attempt 2"), {"job": job}) == 2
    assert store.versions("iris") == [1, 2, 3]
    assert store.names() == ["iris"]


@pytest.mark.parametrize("told", [False, True], ids=["not-told", "told-it-lost"])
def test_two_attempts_of_a_job_at_once_publish_one_version(blobs, tmp_path, told):
    """A worker stalled past its lease while it saved its model, and the worker
    that took its job over (on another host) published meanwhile. The stalled
    one, woken, finds the job's number published and publishes no second
    version; and once its lease is checked (`may_publish`), nothing at all."""
    store = ModelStore(blobs)
    job = new_job_id()
    owner = ModelStore(another_host(blobs, tmp_path / "owner-cache"))

    def stalled_save(path: Path) -> None:  # the new owner publishes meanwhile
        assert owner.publish("iris", writer(b"the owner's"), {"job": job, "by": "owner"}) == 1
        path.write_bytes(b"the stalled worker's")

    def lease_lost() -> None:
        raise LeaseLost("another worker took the job over")

    if told:
        with pytest.raises(LeaseLost):
            store.publish("iris", stalled_save, {"job": job, "by": "stalled"}, lease_lost)
    else:
        assert store.publish("iris", stalled_save, {"job": job, "by": "stalled"}) == 1
    assert store.versions("iris") == [1]
    assert store.metadata("iris", 1)["by"] == "owner"
    assert store.model_file("iris", 1).read_bytes() == b"the owner's"
    assert sorted(blobs.keys("models/iris/1/")) == [
        f"models/iris/1/{file}" for file in (CLAIM_FILE, MANIFEST_FILE, MODEL_FILE)
    ]
    # Not told, it took a number before it found the job's: that one stays unused.
    assert store.publish("iris", writer(), {}) == (2 if told else 3)


def test_version_published_by(store, blobs):
    job = new_job_id()
    assert store.version_published_by("iris", job) is None
    store.publish("iris", writer(), {})
    assert store.publish("iris", writer(), {"job": job}) == 2
    assert store.version_published_by("iris", job) == 2
    assert store.version_published_by("iris", new_job_id()) is None
    assert store.version_published_by("other", job) is None
    # Not ids: no key is built from them, and no marker is written.
    assert store.version_published_by("iris", "../../x") is None
    assert store.version_published_by("../x", job) is None
    assert store.publish("iris", writer(), {"job": "../../escape"}) == 3
    assert store.publish("iris", writer(), {"job": "../../escape"}) == 4
    assert [key for key in blobs.keys("") if "/jobs/" in key] == [f"models/iris/jobs/{job}"]


@pytest.mark.parametrize("blobs", ["folder"], indirect=True)  # the store's logic, not the blobs'
def test_a_retry_after_its_version_was_deleted_takes_a_new_number(store):
    job = new_job_id()
    assert store.publish("iris", writer(b"attempt 1"), {"job": job}) == 1
    # The worker died before it recorded its result; meanwhile the version is deleted.
    store.delete("iris", 1)
    assert store.version_published_by("iris", job) is None
    # The job is delivered again and publishes.
    assert store.publish("iris", writer(b"attempt 2"), {"job": job}) == 2


def test_delete_removes_a_version_and_keeps_its_claim(store, blobs, changes):
    for _ in range(3):
        store.publish("iris", writer(), {})
    store.delete("iris", 2)
    assert store.versions("iris") == [1, 3]
    assert sorted(blobs.keys("models/iris/2/")) == [f"models/iris/2/{CLAIM_FILE}"]
    with pytest.raises(NotFound):
        store.resolve("iris", 2)
    with pytest.raises(NotFound):
        store.metadata("iris", 2)
    with pytest.raises(NotFound):
        store.model_file("iris", 2)
    with pytest.raises(NotFound):
        store.delete("iris", 2)
    assert changes == ["iris"] * 4


def test_a_deleted_version_number_is_never_published_again(store):
    store.publish("iris", writer(), {})
    store.publish("iris", writer(), {})
    store.delete("iris", 2)
    assert store.publish("iris", writer(), {}) == 3
    assert store.versions("iris") == [1, 3]
    # Even when every version is gone.
    store.delete("iris", 1)
    store.delete("iris", 3)
    assert store.versions("iris") == []
    assert store.names() == []
    assert store.publish("iris", writer(), {}) == 4


def test_model_file_refuses_a_tampered_model(store, blobs):
    store.publish("iris", writer(b"the real model"), {})
    blobs.put(f"models/iris/1/{MODEL_FILE}", b"something else")
    with pytest.raises(ValueError, match="does not match the hash"):
        store.model_file("iris", 1)


@pytest.mark.parametrize("blobs", ["s3"], indirect=True)  # only a bucket keeps local copies
def test_a_damaged_cached_copy_is_downloaded_again(store, blobs):
    store.publish("iris", writer(b"the real model"), {})
    path = store.model_file("iris", 1)
    assert path.is_relative_to(blobs.cache_dir)
    path.write_bytes(b"damaged on this host's disk")
    assert store.model_file("iris", 1) == path
    assert path.read_bytes() == b"the real model"


@pytest.mark.parametrize(
    "name", ["../x", "..", "a/b", "/etc", "x/../../y", "", "UPPER", ".tmp-x", "a" * 65, "iris\n"]
)
def test_invalid_names_never_reach_the_store(blobs, name):
    recording = Recording(blobs)
    changes = Changes()
    store = ModelStore(recording, on_change=changes)  # type: ignore[arg-type]
    calls: list[Path] = []

    with pytest.raises(ValueError, match="Model names"):
        store.publish(name, calls.append, {})
    assert calls == []
    for call in (store.manifest, store.metadata, store.model_file):
        with pytest.raises(ValueError, match="Model names"):
            call(name, 1)
    assert store.versions(name) == []
    assert store.latest_version(name) is None
    with pytest.raises(NotFound):
        store.resolve(name, None)
    with pytest.raises(NotFound):
        store.delete(name, 1)
    assert store.version_published_by(name, new_job_id()) is None
    assert recording.calls == []  # no key was built, nothing was asked
    assert changes == []


def test_a_traversal_name_cannot_reach_a_sibling_folder(tmp_path):
    # A folder that looks like a published model next to the store's models/.
    outside = tmp_path / "store" / "x" / "1"
    outside.mkdir(parents=True)
    (outside / MODEL_FILE).write_bytes(b"secret")
    (outside / MANIFEST_FILE).write_text(json.dumps({"files": {}}))
    store = ModelStore(FolderBlobs(tmp_path / "store"))
    assert store.versions("../x") == []
    with pytest.raises(ValueError):
        store.model_file("../x", 1)
    with pytest.raises(NotFound):
        store.delete("../x", 1)
    assert (outside / MODEL_FILE).read_bytes() == b"secret"


def test_names_lists_only_models_with_a_manifest(store, blobs):
    store.publish("iris", writer(), {})
    store.publish("digits", writer(), {})
    with pytest.raises(RuntimeError):
        store.publish("broken", failing_writer, {})
    store.publish("gone", writer(), {})
    store.delete("gone", 1)
    half = ModelStore(CrashOnce(blobs, MANIFEST_FILE))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        half.publish("half", writer(), {})
    # Objects that look almost like versions.
    for key in ["models/Not_A_Name/1/manifest.json", "models/x/01/manifest.json",
                "models/y/latest/manifest.json", "models/z/1/sub/manifest.json",
                "models/w/manifest.json", "elsewhere/v/1/manifest.json"]:  # fmt: skip
        blobs.put(key, b"{}")
    assert store.names() == ["digits", "iris"]
    assert store.versions("x") == []
    assert store.versions("y") == []


def test_names_of_an_empty_store_is_empty(tmp_path):
    assert ModelStore(FolderBlobs(tmp_path / "nowhere")).names() == []
    assert not (tmp_path / "nowhere").exists()


def test_on_change_is_told_the_name_after_publish_and_delete(blobs):
    seen: list[tuple[str, list[int]]] = []
    store = ModelStore(blobs)
    # Called after the change is in the store: the callback sees it.
    store.on_change = lambda name: seen.append((name, store.versions(name)))
    store.publish("iris", writer(), {})
    store.publish("digits", writer(), {})
    store.delete("iris", 1)
    with pytest.raises(NotFound):
        store.delete("iris", 1)
    assert seen == [("iris", [1]), ("digits", [1]), ("iris", [])]


def test_a_folder_store_of_the_earlier_layout_is_adopted_whole(tmp_path):
    """Versions renamed into place with a `metadata.json`, and `.retired-N`
    markers: every version keeps serving, and no retired number comes back."""
    models = tmp_path / "models" / "iris"
    job = new_job_id()
    for version, content in ((1, b"first"), (3, b"third")):
        (models / str(version)).mkdir(parents=True)
        (models / str(version) / "model.keras").write_bytes(content)
        metadata = {
            "name": "iris",
            "version": version,
            "job": job if version == 3 else None,
            "model_sha256": hashlib.sha256(content).hexdigest(),
            "task": "binary",
        }
        (models / str(version) / "metadata.json").write_text(json.dumps(metadata))
    (models / ".retired-2").touch()
    (models / ".retired-4").touch()
    blobs = FolderBlobs(tmp_path)

    assert sorted(adopt_earlier_layout(blobs)) == ["models/iris/1", "models/iris/3"]
    assert adopt_earlier_layout(blobs) == []  # idempotent
    store = ModelStore(blobs)
    assert store.versions("iris") == [1, 3]
    assert store.model_file("iris", 3).read_bytes() == b"third"
    assert store.metadata("iris", 1)["task"] == "binary"
    assert store.version_published_by("iris", job) == 3
    assert store.publish("iris", writer(b"fifth"), {}) == 5
    assert not list(models.glob(".retired-*")) and not list(models.glob("*/metadata.json"))
