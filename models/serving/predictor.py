"""Prediction: published versions loaded once, held within a byte budget.

Serving never calls `model.predict` per request: its per-call set-up costs
far more than a small MLP's arithmetic. A loaded version runs the numpy
forward pass (models.serving.forward) once it has matched Keras on a probe
batch, and Keras' own inference call otherwise, in bounded chunks either way.
Every version is warmed (models.serving.warm_up) before it is held
(models.serving.model_memory), and nothing is served cold.

What each API process keeps loaded (ModelMesh's rule, within one process):
the latest version and every labelled version of every model, as far as
`FITSERVE_MODEL_CACHE_BYTES` goes. They are loaded at start
(`start_warm_up`) and the moment this process learns of a publish or a
label move (`follow_publishes`, through models.serving.catalog), while the
version in hand answers; past the budget, versions least recently used are
dropped and loaded again on demand, and a readiness question loads the
version it asks about (`ready`, within READY_WAIT_S). A version that fails
to load never replaces a working one (TF Serving's availability-preserving
rule).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from models.errors import ServiceUnavailable
from models.serving.catalog import ModelCatalog
from models.serving.loaded_model import LoadedModel, Prediction
from models.serving.model_loading import load_version
from models.serving.model_memory import Key, ModelMemory
from models.serving.warm_up import WarmUp, warm_up
from models.settings import DEFAULT_MODEL_CACHE_BYTES
from models.storage.model_store import ModelStore

if TYPE_CHECKING:
    from models.serving.version_labels import VersionLabels

log = logging.getLogger(__name__)

RETRY_FAILED_LOAD_S = 30.0
# Listing the models at start is tried again this often, for at most this long
# (the store may be coming up with us; a process never waits on it for good).
LIST_RETRY_S = 1.0
LIST_GIVE_UP_S = 60.0
# How long a readiness question waits for the load it starts: a client that
# polls ready before sending hears true for a model it can use.
READY_WAIT_S = 1.0
# Loads of one version a caller joins before it gives up (each ended without
# holding it: no room for the keeper, or pushed out again at once).
JOIN_ROUNDS = 3


class ModelMemoryFull(ServiceUnavailable):
    """The version would have to push out a version kept loaded (a latest or
    a labelled one) that the caller may not drop: it loads on demand."""

    @classmethod
    def of(cls, key: Key) -> ModelMemoryFull:
        name, version = key
        return cls(
            f"Model {name!r} version {version} does not fit the model memory beside "
            "the versions kept loaded"
        )


class Predictor:
    def __init__(
        self,
        store: ModelStore,
        catalog: ModelCatalog | None = None,
        budget_bytes: int = DEFAULT_MODEL_CACHE_BYTES,
        warm: Callable[[LoadedModel], None] = warm_up,
        labels: VersionLabels | None = None,
    ) -> None:
        self.store = store
        self._warm = warm
        # Which versions exist: asked on every request, so cached for a remote store.
        self.catalog = catalog or ModelCatalog(store)
        # Labelled versions are kept loaded too (None: no labels, tests and tools).
        self.labels = labels
        self.memory = ModelMemory(budget_bytes)
        self._failed: dict[Key, tuple[float, str]] = {}
        # Loads under way, by version: whoever asks meanwhile waits for that one.
        self._loads: dict[Key, threading.Event] = {}
        # Versions that found no room beside those kept loaded, and their bytes.
        self._no_room: dict[Key, int] = {}
        # What the keeper thread loads ahead of requests (`_keep_loaded`).
        self._queue: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._keeper: threading.Thread | None = None
        self._lock = threading.Lock()
        # Done from the start; `start_warm_up` makes readiness wait for it.
        self.warmup = WarmUp()

    @property
    def budget_bytes(self) -> int:
        return self.memory.budget_bytes

    def loaded_count(self) -> int:
        return len(self.memory)

    # -- serving -----------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The loaded version a request for (name, version) is answered by,
        loaded now if it is not held (NotFound for one that does not exist,
        ServiceUnavailable for one that does not load)."""
        if version is not None:
            return self._get_exact(name, self.catalog.resolve(name, version))
        versions = self.catalog.versions(name)
        if not versions:
            self.catalog.resolve(name, None)  # raises NotFound naming the model
        serving = self._newest_held(name, versions)
        if serving is not None and serving.version != versions[-1]:
            # A new version appeared: load it aside and swap it in when ready;
            # until then (or if it fails) the version in hand keeps answering.
            self._load_in_background((name, versions[-1]))
            return serving
        if serving is not None:
            return serving
        problems = []
        for candidate in reversed(versions):  # newest first
            try:
                return self._get_exact(name, candidate)
            except ServiceUnavailable as exc:
                problems.append(exc.message)
        raise ServiceUnavailable(f"No version of model {name!r} could be loaded: {problems}")

    def predict(self, name: str, version: int | None, x: np.ndarray) -> Prediction:
        return self.get(name, version).run(x)

    def ready(
        self, name: str, version: int | None = None, wait_s: float = READY_WAIT_S
    ) -> LoadedModel | None:
        """The version that answers a request for (name, version) now, warm;
        else its load is started and waited for up to `wait_s`: None when it
        is not done by then (or failed). NotFound for a model or version that
        does not exist."""
        if version is not None:
            key = (name, self.catalog.resolve(name, version))
            return self.memory.get(key) or self._wait_for(key, wait_s)
        versions = self.catalog.versions(name)
        if not versions:
            self.catalog.resolve(name, None)  # raises NotFound naming the model
        serving = self._newest_held(name, versions)
        if serving is not None:
            if serving.version != versions[-1]:
                self._load_in_background((name, versions[-1]))
            return serving
        for candidate in reversed(versions):  # what `get` would serve
            loaded = self._wait_for((name, candidate), wait_s)
            if loaded is not None or not self._failed_recently((name, candidate)):
                return loaded
        return None

    def load_failure(self, name: str, version: int) -> str | None:
        """Why the version failed to load lately (TF Serving's status); None otherwise."""
        with self._lock:
            failure = self._failed.get((name, version))
        return failure[1] if failure is not None else None

    def _newest_held(self, name: str, versions: list[int]) -> LoadedModel | None:
        for candidate in reversed(versions):
            loaded = self.memory.get((name, candidate))
            if loaded is not None:
                return loaded
        return None

    def _wait_for(self, key: Key, wait_s: float) -> LoadedModel | None:
        """Load `key` (or join its load) and wait up to `wait_s` for it. A
        load it joined that could not make room (the keeper's, which never
        evicts a version kept loaded) is followed by one of its own that can."""
        deadline = time.monotonic() + wait_s
        while True:
            done = self._load_in_background(key)
            if done is not None:
                done.wait(max(0.0, deadline - time.monotonic()))
            loaded = self.memory.get(key)
            if loaded is not None or done is None or time.monotonic() >= deadline:
                return loaded

    # -- what is kept loaded -------------------------------------------------

    def wanted(self, key: Key) -> bool:
        """Whether the version is one every process keeps loaded: its model's
        latest, or one a label points at (from memory: never a round trip)."""
        name, version = key
        if self.catalog.latest_version(name) == version:
            return True
        known = self.labels.known(name) if self.labels is not None else None
        return known is not None and version in known.values()

    def _wanted_versions(self, name: str) -> list[int]:
        versions = self.catalog.versions(name)
        known = self.labels.known(name) if self.labels is not None else None
        labelled = sorted({v for v in (known or {}).values() if v in versions}, reverse=True)
        return ([versions[-1]] if versions else []) + [v for v in labelled if v != versions[-1]]

    def follow_publishes(self) -> None:
        """Load and warm a version the moment the catalog learns it was
        published or labelled, before any request asks for it, whenever it
        fits the budget beside the versions kept loaded; a deleted one is
        dropped. Every catalog poll loads what an announcement lost. One
        thread (`_keeper`) does these loads, one after another."""
        self.catalog.listeners.append(self._changed)
        self.catalog.poll_listeners.append(self._polled)

    def _changed(self, name: str, versions: list[int]) -> None:
        self.memory.drop(lambda key: key[0] == name and key[1] not in versions)
        if self.labels is not None:
            self.labels.refresh([name])
        self._keep_loaded([(name, version) for version in self._wanted_versions(name)])

    def _polled(self) -> None:
        if not self.warmup.done:
            return  # the warm-up loads them
        names = self.catalog.names()
        if self.labels is not None:
            self.labels.refresh(names)
        gone = [key for key in self.memory.keys() if key[1] not in self.catalog.versions(key[0])]
        self.memory.drop(lambda key: key in gone)
        self._keep_loaded([(name, version) for name in names
                           for version in self._wanted_versions(name)])  # fmt: skip

    def _keep_loaded(self, keys: list[Key]) -> None:
        """Queue `keys` for the keeper thread, which loads them in turn where
        they fit beside the versions kept loaded (never evicting those)."""
        keys = [key for key in keys if key not in self.memory]
        with self._lock:
            fresh = [key for key in keys if key not in self._queued]
            self._queued.update(fresh)
            self._queue.extend(fresh)
            if not fresh or self._keeper is not None:
                return
            self._keeper = threading.Thread(target=self._keep, name="model-keeper", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._keeper = None
                    return
                key = self._queue.popleft()
                self._queued.discard(key)
            try:
                # A version that failed to load is tried again on demand (a
                # request or a ready question), never by the keeper: a process
                # would otherwise retry every broken version at every poll.
                if key in self.memory or self.load_failure(*key) or not self._room_since(key):
                    continue
                self._load_or_join(key, evict_wanted=False)
            except ServiceUnavailable as exc:  # recorded; an older version serves
                log.info("model %s version %s not loaded ahead: %s", *key, exc.message)
            except Exception:  # the keeper goes on with the next one
                log.exception("loading model %s version %s ahead failed", *key)

    # -- loading -------------------------------------------------------------

    def _raise_if_failed_recently(self, key: Key) -> None:
        """ServiceUnavailable with the reason, for a version whose load failed
        within RETRY_FAILED_LOAD_S."""
        if self._failed_recently(key):
            name, version = key
            raise ServiceUnavailable(
                f"Model {name!r} version {version} failed to load: {self.load_failure(*key)}"
            )

    def _failed_recently(self, key: Key) -> bool:
        with self._lock:
            failed_at, _ = self._failed.get(key, (float("-inf"), ""))
        return time.monotonic() - failed_at < RETRY_FAILED_LOAD_S

    def _load_in_background(self, key: Key) -> threading.Event | None:
        """Load (and warm) `key` aside, now, unless it is held, loading or
        failed lately; the event set when its load ends, or None."""
        with self._lock:
            if key in self._loads:
                return self._loads[key]
        if key in self.memory or self._failed_recently(key):
            return None
        with self._lock:
            if key in self._loads:
                return self._loads[key]
            done = self._loads[key] = threading.Event()

        def load() -> None:
            try:
                self._load(key, done, evict_wanted=True)
            except Exception as exc:  # a load failure is in _failed; the older version serves
                log.info("background load of model %s version %s: %s", *key, exc)

        name, version = key
        threading.Thread(target=load, name=f"load-{name}-{version}", daemon=True).start()
        return done

    def _room_since(self, key: Key) -> bool:
        """Whether `key` may fit now, for a version that found no room before."""
        with self._lock:
            needed = self._no_room.get(key)
        if needed is None:
            return True
        return self.memory.room(self.wanted) >= needed

    def _get_exact(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        return self.memory.get(key) or self._load_or_join(key, evict_wanted=True)

    def _load_or_join(self, key: Key, *, evict_wanted: bool) -> LoadedModel:
        """Load `key` in this thread, or wait for the load another thread has
        under way and take its outcome; after one that could not make room
        (the keeper's), load it again here if this caller may evict."""
        for _ in range(JOIN_ROUNDS):
            with self._lock:
                waiting = self._loads.get(key)
                if waiting is None:
                    done = self._loads[key] = threading.Event()
            if waiting is None:
                return self._load(key, done, evict_wanted=evict_wanted)
            waiting.wait()
            loaded = self.memory.get(key)
            if loaded is not None:
                return loaded
            self._raise_if_failed_recently(key)
            if not evict_wanted:
                break
        raise ModelMemoryFull.of(key)

    def _load(self, key: Key, done: threading.Event, *, evict_wanted: bool) -> LoadedModel:
        """Load, warm and hold `key` (the caller registered `done` for it)."""
        name, version = key
        try:
            held = self.memory.get(key)
            if held is not None:
                return held
            self._raise_if_failed_recently(key)
            try:
                loaded = load_version(self.store, name, version)
                # Warm before it is held: a version takes no traffic cold.
                self._warm(loaded)
                if not self.memory.fits(loaded.nbytes):
                    raise ValueError(
                        f"it needs {loaded.nbytes:,} bytes to serve, more than the model "
                        f"memory of an API process holds ({self.budget_bytes:,} bytes, "
                        "setting FITSERVE_MODEL_CACHE_BYTES)"
                    )
            except Exception as exc:  # a broken version must not take serving down
                log.warning("model %s version %s failed to load: %s", name, version, exc,
                            exc_info=not isinstance(exc, ValueError))  # fmt: skip
                reason = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._failed[key] = (time.monotonic(), reason)
                raise ServiceUnavailable(
                    f"Model {name!r} version {version} failed to load: {reason}"
                ) from None
            if not self.memory.put(loaded, self.wanted, evict_wanted=evict_wanted):
                with self._lock:
                    self._no_room[key] = loaded.nbytes
                raise ModelMemoryFull.of(key)
            with self._lock:
                self._failed.pop(key, None)
                self._no_room.pop(key, None)
            return loaded
        finally:
            with self._lock:
                self._loads.pop(key, None)
            done.set()

    # -- at start ------------------------------------------------------------

    def start_warm_up(self) -> None:
        """Load and warm the versions kept loaded (`preload`), in the
        background: `warmup` says how far it got, and the process is not
        ready until it is done. The models are listed in the call (as the
        app's start reads the store already), so a process with none is
        ready from the start."""
        self.warmup.begin()
        names = None
        try:
            names = self.catalog.names()
        except Exception as exc:  # listed again in the background
            log.warning("could not list the models to warm up: %s", exc)
        if names == []:
            self.warmup.expect(0)
            self.warmup.finish()
            return
        thread = threading.Thread(target=self.preload, args=(names,), daemon=True,
                                  name="warm-up")  # fmt: skip
        thread.start()

    def preload(self, names: list[str] | None = None) -> None:
        """Load and warm the latest version of every model, then every
        labelled one, as far as the budget goes, so the first requests do
        not pay for it; reports to `warmup`. A model none of whose versions
        loads counts as done, with a warning."""
        try:
            if names is None:
                names = self._list_for_warm_up()
            if names is None:
                return
            if self.labels is not None:
                self.labels.refresh(names)
            labelled = [(name, version) for name in names
                        for version in self._wanted_versions(name)[1:]]  # fmt: skip
            self.warmup.expect(len(names) + len(labelled))
            left_out = 0
            for name in names:
                left_out += self._preload_latest(name)
            for key in labelled:
                try:
                    self._load_or_join(key, evict_wanted=False)
                    self.warmup.loaded()
                except Exception as exc:
                    left_out += self._preload_failed(key[0], exc)
            if left_out:
                self.warmup.note(
                    f"{left_out} versions not loaded at start: the model memory "
                    f"({self.budget_bytes:,} bytes, setting FITSERVE_MODEL_CACHE_BYTES) holds "
                    "the others; they load on their first request"
                )
        finally:
            self.warmup.finish()

    def _preload_latest(self, name: str) -> int:
        """1 when the model's latest version found no room, else 0."""
        problems = []
        for candidate in reversed(self.catalog.versions(name)):  # newest first, as `get`
            try:
                self._load_or_join((name, candidate), evict_wanted=False)
                self.warmup.loaded()
                self._note_skipped_newest(name, candidate)
                return 0
            except ServiceUnavailable as exc:
                if isinstance(exc, ModelMemoryFull):
                    return self._preload_failed(name, exc)
                problems.append(exc.message)  # broken: an older version may serve
        message = f"No version of model {name!r} could be loaded: {problems}"
        return self._preload_failed(name, ServiceUnavailable(message))

    def _preload_failed(self, name: str, exc: Exception) -> int:
        """1 when the version found no room (it loads on demand), else 0."""
        if isinstance(exc, ModelMemoryFull):
            self.warmup.loaded()
            return 1
        message = exc.message if isinstance(exc, ServiceUnavailable) else repr(exc)
        log.warning("no loadable version of %s to preload: %s", name, message)
        self.warmup.failed(name, message)
        return 0

    def _note_skipped_newest(self, name: str, serving: int) -> None:
        """A warning when the newest version failed and an older one serves."""
        newest = self.catalog.latest_version(name)
        reason = self.load_failure(name, newest or 0)
        if newest is not None and newest != serving and reason:
            self.warmup.note(f"model {name!r} serves version {serving}: version {newest} "
                             "failed to load", reason)  # fmt: skip

    def _list_for_warm_up(self) -> list[str] | None:
        deadline = time.monotonic() + LIST_GIVE_UP_S
        while True:
            try:
                return self.catalog.names()
            except Exception as exc:  # the store is away: again, up to the deadline
                if time.monotonic() >= deadline:
                    log.warning("could not list the models to warm up: %s", exc)
                    self.warmup.note("models not warmed at start: they could not be listed",
                                     f"{type(exc).__name__}: {exc}")  # fmt: skip
                    return None
            time.sleep(LIST_RETRY_S)
