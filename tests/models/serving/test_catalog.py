"""The model catalog: a remote store's versions cached per process, kept
current by announcements on the real Redis (and a backstop poll); a local
folder asked on every call."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from models.errors import NotFound
from models.serving.catalog import ModelCatalog, announce_changes, changes_channel
from models.serving.predictor import Predictor
from models.settings import Settings
from models.storage.model_store import ModelStore, resolve_in

# The requirement: every API process learns of a change within 2 s of its
# announcement (a pub/sub message takes milliseconds; the poll is off here).
LEARN_S = 2.0
# Waits for things with no such requirement (a thread starting, reconnecting).
SETTLE_S = 15.0


class FakeBlobs:
    def __init__(self, remote: bool) -> None:
        self.remote = remote


class FakeStore:
    """A store's read interface over a dict, counting every listing."""

    def __init__(self, remote: bool = True) -> None:
        self.blobs = FakeBlobs(remote)
        self.published: dict[str, list[int]] = {}
        self.lock = threading.Lock()  # the catalog's subscriber reads it too
        self.calls: Counter[str] = Counter()
        self.on_change: Callable[[str], None] | None = None

    def names(self) -> list[str]:
        self.calls["names"] += 1
        with self.lock:
            return sorted(name for name, versions in self.published.items() if versions)

    def versions(self, name: str) -> list[int]:
        self.calls[f"versions {name}"] += 1
        with self.lock:
            return sorted(self.published.get(name, []))

    def all_versions(self) -> dict[str, list[int]]:
        self.calls["all_versions"] += 1
        with self.lock:
            return {name: sorted(versions) for name, versions in self.published.items() if versions}

    def resolve(self, name: str, version: int | None) -> int:
        self.calls[f"resolve {name}"] += 1
        return resolve_in(name, version, self.versions(name))

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        self.calls[f"metadata {name}"] += 1
        return {"name": name, "version": self.resolve(name, version)}

    def publish(self, name: str) -> int:
        with self.lock:
            version = max([0, *self.published.get(name, [])]) + 1
            self.published.setdefault(name, []).append(version)
        if self.on_change is not None:
            self.on_change(name)
        return version

    def delete(self, name: str, version: int) -> None:
        with self.lock:
            self.published[name].remove(version)
        if self.on_change is not None:
            self.on_change(name)


def as_store(fake: FakeStore) -> ModelStore:
    return cast(ModelStore, fake)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.01)


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    # Named, so that a test can break this catalog's subscription and no other.
    client = redis.Redis.from_url(settings.redis_url, client_name=f"catalog-{uuid.uuid4().hex}")
    yield client
    client.close()


@pytest.fixture
def store(client: redis.Redis, settings: Settings) -> FakeStore:
    fake = FakeStore()
    fake.on_change = announce_changes(client, settings.redis_prefix)
    return fake


@pytest.fixture
def catalog(store: FakeStore, client: redis.Redis, settings: Settings) -> Iterator[ModelCatalog]:
    catalog = ModelCatalog(as_store(store), client, settings.redis_prefix, poll_s=60)
    yield catalog
    catalog.close()


def subscribed(catalog: ModelCatalog, times: int = 1) -> None:
    """Until the subscriber has (re)subscribed `times` times and listed everything after."""
    catalog.names()  # the first ask starts it
    wait_until(lambda: catalog.subscriptions >= times, SETTLE_S, "subscribed")


def test_a_remote_store_is_listed_once_for_many_lookups(
    catalog: ModelCatalog, store: FakeStore
) -> None:
    store.publish("m")
    store.publish("m")
    subscribed(catalog)
    assert catalog.versions("m") == [1, 2]
    listed = store.calls.copy()
    for _ in range(1000):
        assert catalog.versions("m") == [1, 2]
        assert catalog.resolve("m", None) == 2
        assert catalog.resolve("m", 1) == 1
        assert catalog.latest_version("m") == 2
        assert catalog.names() == ["m"]
    assert store.calls == listed
    assert catalog.metadata("m", 2) == {"name": "m", "version": 2}
    assert catalog.metadata("m", 2) == {"name": "m", "version": 2}
    assert store.calls["metadata m"] == 1  # a published version never changes


def test_a_publish_and_a_delete_elsewhere_arrive_by_announcement(
    catalog: ModelCatalog, store: FakeStore
) -> None:
    store.publish("m")
    subscribed(catalog)
    assert catalog.versions("m") == [1]
    store.publish("m")  # as another host's worker would: stored, then announced
    wait_until(lambda: catalog.versions("m") == [1, 2], LEARN_S, "the publish")
    assert catalog.resolve("m", None) == 2
    store.delete("m", 2)
    wait_until(lambda: catalog.versions("m") == [1], LEARN_S, "the delete")
    with pytest.raises(NotFound, match=r"has no version 2; it has versions \[1\]"):
        catalog.resolve("m", 2)
    store.delete("m", 1)
    wait_until(lambda: catalog.names() == [], LEARN_S, "the last delete")
    with pytest.raises(NotFound, match="No model named 'm' has been published"):
        catalog.resolve("m", None)
    store.publish("fresh")  # a new model appears in the names too
    wait_until(lambda: catalog.names() == ["fresh"], LEARN_S, "a new model")


def test_announcements_arrive_again_after_the_subscription_breaks(
    catalog: ModelCatalog, store: FakeStore, client: redis.Redis
) -> None:
    store.publish("m")
    subscribed(catalog)
    assert catalog.versions("m") == [1]
    name = client.client_getname()
    ids = [entry["id"] for entry in client.client_list(_type="pubsub") if entry["name"] == name]
    assert len(ids) == 1
    client.client_kill_filter(_id=ids[0])
    # The subscriber notices, subscribes again and lists everything once more.
    subscribed(catalog, times=2)
    names_listed = store.calls["names"]
    store.publish("m")
    wait_until(lambda: catalog.versions("m") == [1, 2], LEARN_S, "the publish")
    assert store.calls["names"] == names_listed  # the announcement told it, not a poll


def test_many_threads_ask_while_changes_arrive(catalog: ModelCatalog, store: FakeStore) -> None:
    store.publish("m")
    subscribed(catalog)
    errors: list[BaseException] = []
    running = True

    def ask() -> None:
        try:
            while running:
                for name in catalog.names():
                    versions = catalog.versions(name)
                    if versions:
                        assert versions == sorted(versions)
                catalog.latest_version("m")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for index in range(20):
            store.publish(f"model-{index % 4}")
            time.sleep(0.005)
        store.delete("m", 1)
    finally:
        running = False
        for thread in threads:
            thread.join()
    assert errors == []
    expected = ["model-0", "model-1", "model-2", "model-3"]
    wait_until(lambda: catalog.names() == expected, LEARN_S, "every change")
    assert [catalog.versions(name) for name in expected] == [[1, 2, 3, 4, 5]] * 4


def test_a_change_missed_while_unsubscribed_is_found_on_subscribing_again(
    catalog: ModelCatalog, store: FakeStore, client: redis.Redis
) -> None:
    store.publish("m")
    subscribed(catalog)
    assert catalog.versions("m") == [1]
    store.on_change = None
    store.publish("m")  # never announced
    name = client.client_getname()
    for entry in client.client_list(_type="pubsub"):
        if entry["name"] == name:
            client.client_kill_filter(_id=entry["id"])
    subscribed(catalog, times=2)
    assert catalog.versions("m") == [1, 2]


class FileStore(FakeStore):
    """A FakeStore whose versions live in a file, seen by a forked child too."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.path.write_text("{}")

    def versions(self, name: str) -> list[int]:
        self.published = json.loads(self.path.read_text())
        return super().versions(name)

    def names(self) -> list[str]:
        self.published = json.loads(self.path.read_text())
        return super().names()

    def publish(self, name: str) -> int:
        self.published = json.loads(self.path.read_text())
        self.published.setdefault(name, []).append(max([0, *self.published.get(name, [])]) + 1)
        staged = self.path.with_suffix(".tmp")
        staged.write_text(json.dumps(self.published))
        os.replace(staged, self.path)  # a reader sees the old file or the new, whole
        if self.on_change is not None:
            self.on_change(name)
        return self.published[name][-1]


# When the whole suite runs, JAX is loaded in this process and warns on every
# fork: the child here runs no JAX, only the catalog.
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_a_forked_process_subscribes_on_its_own(
    tmp_path: Path, client: redis.Redis, settings: Settings
) -> None:
    store = FileStore(tmp_path / "versions.json")
    store.on_change = announce_changes(client, settings.redis_prefix)
    store.publish("m")
    catalog = ModelCatalog(as_store(store), client, settings.redis_prefix, poll_s=60)
    try:
        subscribed(catalog)  # the parent's subscriber does not survive the fork
        ready, go = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child, as an API worker process: first asks start its subscriber
            code = 1
            try:
                subscribed(catalog)
                assert catalog.versions("m") == [1]
                os.write(go, b"ready")
                wait_until(lambda: catalog.versions("m") == [1, 2], LEARN_S, "the publish")
                code = 0
            finally:
                os._exit(code)
        os.close(go)
        assert os.read(ready, 5) == b"ready"
        store.publish("m")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert catalog.versions("m") == [1, 2]  # the parent learnt it too
    finally:
        catalog.close()


def test_the_poll_finds_changes_nobody_announced(store: FakeStore) -> None:
    store.on_change = None
    store.publish("m")
    catalog = ModelCatalog(as_store(store), None, poll_s=0.2)
    try:
        assert catalog.versions("m") == [1]
        store.publish("m")
        wait_until(lambda: catalog.versions("m") == [1, 2], SETTLE_S, "the poll")
    finally:
        catalog.close()


def test_a_missing_model_is_listed_again_at_most_every_recheck(store: FakeStore) -> None:
    store.on_change = None  # nothing announced, and the poll far off
    catalog = ModelCatalog(as_store(store), None, poll_s=60, recheck_s=0.3)
    try:
        for _ in range(200):
            assert catalog.versions("new") == []
            with pytest.raises(NotFound, match="No model named 'new'"):
                catalog.resolve("new", None)
        assert store.calls["versions new"] == 1
        asks, until = 0, time.monotonic() + 1.0
        while time.monotonic() < until:
            assert catalog.versions("new") == []
            asks += 1
            time.sleep(0.005)
        # About one listing per 0.3 s of asking, not one per ask.
        assert 2 <= store.calls["versions new"] <= 5 < asks / 10
        store.publish("new")
        # Found on an ask after the recheck interval, long before the poll.
        wait_until(lambda: catalog.versions("new") == [1], SETTLE_S, "the recheck")
    finally:
        catalog.close()


def test_a_version_asked_for_before_its_announcement_is_listed_again(store: FakeStore) -> None:
    store.on_change = None
    store.publish("m")
    catalog = ModelCatalog(as_store(store), None, poll_s=60, recheck_s=0.2)
    try:
        assert catalog.resolve("m", None) == 1
        store.publish("m")
        wait_until(lambda: _resolves(catalog, "m", 2), SETTLE_S, "the recheck")
    finally:
        catalog.close()


def _resolves(catalog: ModelCatalog, name: str, version: int) -> bool:
    try:
        return catalog.resolve(name, version) == version
    except NotFound:
        return False


def test_a_local_store_told_of_changes_is_cached_too(
    client: redis.Redis, settings: Settings
) -> None:
    """The API's case with a folder: the worker announces what it publishes,
    so a request does not pay for a directory read and a stat per version."""
    store = FakeStore(remote=False)
    store.on_change = announce_changes(client, settings.redis_prefix)
    store.publish("m")
    catalog = ModelCatalog(as_store(store), client, settings.redis_prefix, poll_s=60)
    try:
        subscribed(catalog)
        assert catalog.versions("m") == [1]  # listed once, on this first ask
        listed = store.calls["versions m"]
        for _ in range(100):
            assert catalog.versions("m") == [1]
        assert store.calls["versions m"] == listed
        store.publish("m")
        wait_until(lambda: catalog.versions("m") == [1, 2], LEARN_S, "learned of version 2")
    finally:
        catalog.close()


def test_a_local_store_without_redis_is_asked_on_every_call() -> None:
    store = FakeStore(remote=False)
    store.publish("m")
    catalog = ModelCatalog(as_store(store))
    for _ in range(3):
        assert catalog.names() == ["m"]
        assert catalog.versions("m") == [1]
        assert catalog.resolve("m", 1) == 1
        assert catalog.metadata("m", 1) == {"name": "m", "version": 1}
    assert store.calls["names"] == 3
    assert store.calls["versions m"] == 3 + 3 + 3  # resolve and metadata list too
    assert store.calls["resolve m"] == 3 + 3
    store.publish("m")
    assert catalog.versions("m") == [1, 2]  # at once, nothing to wait for
    assert catalog._thread is None  # no subscriber


def test_the_predictor_looks_versions_up_in_the_catalog(catalog: ModelCatalog) -> None:
    store = cast(FakeStore, catalog.store)
    predictor = Predictor(catalog.store, catalog)
    for _ in range(50):
        with pytest.raises(NotFound, match="No model named 'nothing'"):
            predictor.get("nothing")
        with pytest.raises(NotFound, match="No model named 'nothing'"):
            predictor.get("nothing", 3)
    assert store.calls["versions nothing"] == 1
    assert store.calls["resolve nothing"] == 0


def test_announcing_never_fails_the_publisher(caplog: pytest.LogCaptureFixture) -> None:
    nowhere = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    announce = announce_changes(nowhere, "fitserve-test-nowhere")
    with caplog.at_level(logging.WARNING, logger="models.serving.catalog"):
        announce("m")
    assert "could not announce a change of model m" in caplog.text
    assert changes_channel("p") == "p:models"
