"""Which versions each model has, as this API process sees them.

The predictor asks on every request, and a listing costs a round trip to a
bucket (or a directory read), so the catalog answers from memory: each
model is listed once, on its first ask; a publish or delete anywhere is
announced on the Redis channel `<prefix>:models` (`announce_changes`) and a
subscriber thread lists that model again; after every (re)subscription, and
every `poll_s`, everything cached is listed again, for announcements lost
while Redis was away. A model with no versions, or asked for a version it
lacks, is listed again at most every `recheck_s`. Without a Redis client it
asks the store every time. The subscriber starts on the first ask in each
process: the API server forks its workers after importing us.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from models.ids import is_model_name
from models.storage.model_store import ModelStore, resolve_in

log = logging.getLogger(__name__)

POLL_S = 10.0
RECHECK_S = 1.0
# Models listed with no versions that are remembered (bounded: names are the
# caller's to choose).
MAX_ABSENT = 1024
# Reconnecting to Redis: from MIN_BACKOFF_S, doubling up to MAX_BACKOFF_S.
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
# A subscription is pinged every poll; one silent for this long is reconnected
# (a connection that died without closing never reports an error).
PONG_TIMEOUT_S = 5.0
# The subscriber wakes at least this often (to see that it was closed).
LISTEN_TICK_S = 0.5
# How long an ask waits for another thread's listing of the same model.
SHARED_LISTING_WAIT_S = 30.0


def changes_channel(prefix: str) -> str:
    """The Redis channel on which publishes and deletes are announced."""
    return f"{prefix}:models"


def announce_changes(client: redis.Redis, prefix: str) -> Callable[[str], None]:
    """A ModelStore `on_change`: announces the model's name to every catalog.

    Never raises into the publisher: with Redis away the announcement is
    lost, and the catalogs' backstop poll finds the change instead."""
    channel = changes_channel(prefix)

    def announce(name: str) -> None:
        try:
            client.publish(channel, name)
        except Exception as exc:  # the version is stored; only the news is late
            log.warning("could not announce a change of model %s on %s: %s", name, channel, exc)

    return announce


@dataclass
class _Entry:
    versions: list[int]
    checked_at: float  # time.monotonic() of the listing (or of the claim to list again)
    stamp: int  # when its listing started, on the catalog's clock: a later one wins


class ModelCatalog:
    """`names`, `versions`, `resolve` and `metadata` of a ModelStore, cached
    when changes are announced to it or the store is remote (see the module's
    docstring). Thread-safe."""

    def __init__(
        self,
        store: ModelStore,
        client: redis.Redis | None = None,
        prefix: str = "fitserve",
        *,
        poll_s: float = POLL_S,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self.store = store
        # Cached when changes are announced to it (a Redis client) or when
        # listing crosses the network (a bucket, polled without announcements);
        # else (a folder, no Redis: tests, tools) every ask lists the store.
        self.cached = client is not None or bool(getattr(store.blobs, "remote", False))
        self.channel = changes_channel(prefix)
        self.poll_s = poll_s
        self.recheck_s = recheck_s
        self._client = client
        # Called with (name, versions) from the subscriber thread after an
        # announced change is listed (the predictor loads a new version aside).
        self.listeners: list[Callable[[str, list[int]], None]] = []
        # Called from the subscriber thread after each listing of everything
        # (at every (re)subscription and poll): what an announcement lost.
        self.poll_listeners: list[Callable[[], None]] = []
        self._reset()
        if self.cached:
            # A forked child starts empty, with fresh locks (one held by another
            # thread at the fork would never be released) and its own subscriber.
            ref = weakref.ref(self)

            def after_fork() -> None:
                catalog = ref()
                if catalog is not None:
                    catalog._reset()

            os.register_at_fork(after_in_child=after_fork)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, _Entry] = {}  # models with versions
        self._absent: OrderedDict[str, _Entry] = OrderedDict()  # listed with none
        self._names: set[str] | None = None
        # Per model and version: a version never changes once published.
        self._metadata: dict[str, dict[int, dict[str, Any]]] = {}
        self._listing: dict[str, threading.Event] = {}  # first listings under way
        self._clock = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0
        self._backoff = MIN_BACKOFF_S
        # How many times the subscriber has (re)subscribed and listed everything
        # after it (metrics, tests).
        self.subscriptions = 0

    # -- the read interface ------------------------------------------------

    def names(self) -> list[str]:
        """Every model with at least one version."""
        if not self.cached:
            return self.store.names()
        self._start()
        with self._lock:
            names = sorted(self._names) if self._names is not None else None
        if names is None:
            self._full_refresh()  # every model's versions too, in the one listing
            with self._lock:
                names = sorted(self._names or ())
        return names

    def versions(self, name: str) -> list[int]:
        """The model's versions, ascending ([] when it has none)."""
        if not self.cached:
            return self.store.versions(name)
        self._start()
        if not is_model_name(name):
            return []
        now = time.monotonic()
        with self._lock:
            entry = self._models.get(name)
            if entry is not None:
                return list(entry.versions)
            entry = self._absent.get(name)
            if entry is not None:
                if now - entry.checked_at < self.recheck_s:
                    return []
                entry.checked_at = now  # this thread checks; the others answer []
        if entry is not None:
            return self._recheck(name, [])
        return self._first_listing(name)

    def latest_version(self, name: str) -> int | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def resolve(self, name: str, version: int | None) -> int:
        """The version to serve: `version` if it exists, else the latest; NotFound otherwise."""
        if not self.cached:
            return self.store.resolve(name, version)
        versions = self.versions(name)
        if versions and version is not None and version not in versions:
            versions = self._recheck_known(name, versions)
        return resolve_in(name, version, versions)

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        """The version's metadata (a shallow copy: a cached catalog keeps it,
        a version never changes once published)."""
        if not self.cached:
            return self.store.metadata(name, version)
        resolved = self.resolve(name, version)
        with self._lock:
            cached = self._metadata.get(name, {}).get(resolved)
        if cached is None:
            cached = self.store.metadata(name, resolved)
            with self._lock:
                entry = self._models.get(name)
                if entry is not None and resolved in entry.versions:
                    self._metadata.setdefault(name, {})[resolved] = cached
        return dict(cached)

    # -- keeping it current ------------------------------------------------

    def refresh(self, name: str | None = None) -> None:
        """List `name` (or every model cached, and the names) again now. A
        route that deleted a version calls it, so that this process's next
        request sees the delete without waiting for the announcement. Never
        raises: a store error is logged, and the announcement or the poll
        catches up."""
        if not self.cached:
            return
        if name is None:
            self._poll()
        else:
            self._refresh_one(name)

    def close(self) -> None:
        """Stop the subscriber (tests; a process that exits needs nothing)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _list(self, name: str) -> list[int]:
        """List the model's versions in the store and cache them, unless a
        listing that started later has answered already."""
        with self._lock:
            self._clock += 1
            stamp = self._clock
        versions = self.store.versions(name)
        with self._lock:
            self._keep(name, versions, stamp, time.monotonic())
        return versions

    def _keep(self, name: str, versions: list[int], stamp: int, now: float) -> None:
        current = self._models.get(name) or self._absent.get(name)
        if current is not None and current.stamp > stamp:
            return  # the later listing knows better
        entry = _Entry(list(versions), now, stamp)
        if versions:
            self._models[name] = entry
            self._absent.pop(name, None)
            if self._names is not None:
                self._names.add(name)
        else:
            self._models.pop(name, None)
            self._absent[name] = entry
            self._absent.move_to_end(name)
            while len(self._absent) > MAX_ABSENT:
                self._absent.popitem(last=False)
            if self._names is not None:
                self._names.discard(name)
        known = self._metadata.get(name, {})
        for gone in [version for version in known if version not in versions]:
            del known[gone]
        if not known:
            self._metadata.pop(name, None)

    def _first_listing(self, name: str) -> list[int]:
        """A model never listed in this process: one thread lists it, the
        others asking meanwhile wait for its answer."""
        with self._lock:
            listing = self._listing.get(name)
            mine = listing is None
            if listing is None:
                listing = self._listing[name] = threading.Event()
        if not mine:
            listing.wait(SHARED_LISTING_WAIT_S)
            with self._lock:
                entry = self._models.get(name) or self._absent.get(name)
            return list(entry.versions) if entry is not None else self._list(name)
        try:
            return self._list(name)
        finally:
            with self._lock:
                self._listing.pop(name, None)
            listing.set()

    def _recheck(self, name: str, cached: list[int]) -> list[int]:
        """List again; on a store error, log it and keep the cached answer."""
        try:
            return self._list(name)
        except Exception as exc:
            log.warning("could not list the versions of model %s: %s", name, exc)
            return cached

    def _recheck_known(self, name: str, cached: list[int]) -> list[int]:
        """A model asked for a version it does not have: list it again, at
        most every `recheck_s` (it may have been published a moment ago)."""
        now = time.monotonic()
        with self._lock:
            entry = self._models.get(name)
            if entry is None:  # its last version went meanwhile
                return []
            if now - entry.checked_at < self.recheck_s:
                return list(entry.versions)
            entry.checked_at = now
        return self._recheck(name, cached)

    def _full_refresh(self) -> None:
        """The names, and every model's versions, from one listing of the
        store (a bucket answers it a thousand keys a request)."""
        with self._lock:
            self._clock += 1
            stamp = self._clock
        listed = self.store.all_versions()
        now = time.monotonic()
        with self._lock:
            for name in set(self._models) | set(listed):
                self._keep(name, listed.get(name, []), stamp, now)
            # A model listed since this listing started answers for itself.
            self._names = set(self._models)

    # -- the subscriber ----------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="model-catalog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._next_poll = time.monotonic() + self.poll_s
        while not self._stop.is_set():
            if self._client is not None:
                try:
                    self._listen(self._client)
                except Exception as exc:  # Redis went away: back off, subscribe again
                    log.warning(
                        "model catalog lost its subscription to %s (again in %.1f s): %s",
                        self.channel, self._backoff, exc,
                    )  # fmt: skip
            # Until the next try (or for good, without Redis) the polls go on.
            wait = self._backoff if self._client is not None else float("inf")
            until = time.monotonic() + wait
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= self._next_poll:
                    self._poll()
                if now >= until:
                    break
                self._stop.wait(min(until, self._next_poll) - now)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    def _listen(self, client: redis.Redis) -> None:
        """Subscribe and follow the announcements until Redis fails (raises) or
        the catalog is closed."""
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            pinged_at: float | None = None
            while not self._stop.is_set():
                wait = min(LISTEN_TICK_S, max(0.0, self._next_poll - time.monotonic()))
                message = pubsub.get_message(timeout=wait)
                kind = _text(message["type"]) if message is not None else None
                if kind == "subscribe":
                    # (Re)subscribed, by us or by redis-py reconnecting on its
                    # own: whatever was announced before may have been missed.
                    self._backoff = MIN_BACKOFF_S
                    self._poll()
                    self.subscriptions += 1
                elif kind == "message" and message is not None:
                    self._refresh_one(_text(message["data"]))
                elif kind == "pong":
                    pinged_at = None
                now = time.monotonic()
                # Judged only with nothing left to read: the pong may be queued
                # behind announcements that took a while to act on.
                if message is None and pinged_at is not None and now - pinged_at > PONG_TIMEOUT_S:
                    raise redis.ConnectionError(f"no answer to PING in {PONG_TIMEOUT_S:.0f} s")
                if now >= self._next_poll:
                    self._poll()
                    if pinged_at is None:
                        pubsub.ping()
                        pinged_at = now
        finally:
            try:
                pubsub.close()
            except Exception:  # already broken: nothing left to release
                pass

    def _poll(self) -> None:
        try:
            self._full_refresh()
        except Exception as exc:  # the store is away: the cached answers stand
            log.warning("model catalog could not list the store: %s", exc)
        else:
            for listener in list(self.poll_listeners):
                try:
                    listener()
                except Exception:  # a listener's fault must not stop the subscriber
                    log.exception("model catalog poll listener failed")
        self._next_poll = time.monotonic() + self.poll_s

    def _refresh_one(self, name: str) -> None:
        if not is_model_name(name):
            return
        try:
            versions = self._list(name)
        except Exception as exc:  # the store is away: the poll tries again
            log.warning("model catalog could not list the versions of %s: %s", name, exc)
            return
        for listener in list(self.listeners):
            try:
                listener(name, versions)
            except Exception:  # a listener's fault must not stop the subscriber
                log.exception("model catalog listener failed on %s", name)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
