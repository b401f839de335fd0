"""Prediction: published versions loaded once into an in-process LRU cache.

Serving never calls `model.predict` per request: its per-call set-up costs
far more than a small MLP's arithmetic. A loaded version runs the numpy
forward pass (models.serving.forward) once it has matched Keras on a probe
batch, and Keras' own inference call otherwise, in bounded chunks either way.
Every version is warmed (models.serving.warm_up) before it goes in the cache;
at start the latest version of each model is loaded and warmed
(`start_warm_up`). A newly published version is loaded aside as soon as this
process learns of it (`follow_publishes`, through models.serving.catalog)
while the one in hand answers. A version that fails to load never replaces a
working one (TF Serving's availability-preserving rule).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from models.errors import ServiceUnavailable
from models.serving.catalog import ModelCatalog
from models.serving.loaded_model import LoadedModel, Prediction
from models.serving.model_loading import load_version
from models.serving.warm_up import WarmUp, warm_up
from models.storage.model_store import ModelStore

log = logging.getLogger(__name__)

RETRY_FAILED_LOAD_S = 30.0
# Listing the models at start is tried again this often, for at most this long
# (the store may be coming up with us; a process never waits on it for good).
LIST_RETRY_S = 1.0
LIST_GIVE_UP_S = 60.0


class Predictor:
    def __init__(
        self,
        store: ModelStore,
        catalog: ModelCatalog | None = None,
        cache_size: int = 8,
        warm: Callable[[LoadedModel], None] = warm_up,
    ) -> None:
        self.store = store
        self._warm = warm
        # Which versions exist: asked on every request, so cached for a remote store.
        self.catalog = catalog or ModelCatalog(store)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._failed: dict[tuple[str, int], tuple[float, str]] = {}
        self._pending: set[tuple[str, int | None]] = set()
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        # Done from the start; `start_warm_up` makes readiness wait for it.
        self.warmup = WarmUp()

    def loaded_count(self) -> int:
        return len(self._cache)

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        if version is not None:
            return self._get_exact(name, self.catalog.resolve(name, version))
        versions = self.catalog.versions(name)
        if not versions:
            self.catalog.resolve(name, None)  # raises NotFound naming the model
        serving = self._newest_cached(name, versions)
        if serving is not None and serving.version != versions[-1]:
            # A new version appeared: load it aside and swap it in when ready;
            # until then (or if it fails) the version in hand keeps answering.
            self._load_in_background(name, versions[-1])
            return serving
        problems = []
        for candidate in reversed(versions):  # newest first
            try:
                return self._get_exact(name, candidate)
            except ServiceUnavailable as exc:
                problems.append(exc.message)
        raise ServiceUnavailable(f"No version of model {name!r} could be loaded: {problems}")

    def _newest_cached(self, name: str, versions: list[int]) -> LoadedModel | None:
        with self._lock:
            for candidate in reversed(versions):
                if (name, candidate) in self._cache:
                    return self._cache[(name, candidate)]
        return None

    def _load_in_background(self, name: str, version: int | None) -> None:
        """Load (and warm) `version` aside; None: what `get(name)` would serve
        (the newest version that loads)."""
        key = (name, version)
        with self._lock:
            failed_at = float("-inf")
            if version is not None:
                failed_at, _ = self._failed.get((name, version), (failed_at, ""))
            if key in self._pending or key in self._cache:
                return
            if time.monotonic() - failed_at < RETRY_FAILED_LOAD_S:
                return
            self._pending.add(key)

        def load() -> None:
            try:
                if version is None:
                    self.get(name)
                else:
                    self._get_exact(name, version)
            except Exception as exc:  # a load failure is in _failed; the older version serves
                log.info("background load of model %s version %s: %s", name, version, exc)
            finally:
                with self._lock:
                    self._pending.discard(key)

        threading.Thread(target=load, name=f"load-{name}-{version}", daemon=True).start()

    def ready(self, name: str, version: int | None = None) -> LoadedModel | None:
        """The version that answers a request for (name, version) now from
        the cache, warm; None while none does, after starting its load in
        the background (a readiness probe never waits for a load). NotFound
        for a model or version that does not exist."""
        if version is not None:
            resolved = self.catalog.resolve(name, version)
            with self._lock:
                loaded = self._cache.get((name, resolved))
            if loaded is None:
                self._load_in_background(name, resolved)
            return loaded
        versions = self.catalog.versions(name)
        if not versions:
            self.catalog.resolve(name, None)  # raises NotFound naming the model
        serving = self._newest_cached(name, versions)
        if serving is None:
            self._load_in_background(name, None)
        elif serving.version != versions[-1]:
            self._load_in_background(name, versions[-1])
        return serving

    def follow_publishes(self) -> None:
        """Load and warm a version the moment the catalog learns it was
        published, before any request asks for it: a new version of a model
        in the cache, or a new model while the cache has room (a model that
        would evict another loads on its first request instead)."""
        self.catalog.listeners.append(self._published)

    def _published(self, name: str, versions: list[int]) -> None:
        if not versions:
            return
        with self._lock:
            serving = any((name, version) in self._cache for version in versions)
            room = len(self._cache) < self.cache_size
        if serving or room:
            self._load_in_background(name, versions[-1])

    def start_warm_up(self) -> None:
        """Load and warm the latest version of every model (as many as the
        cache holds), in the background: `warmup` says how far it got, and the
        process is not ready until it is done. The models are listed in the
        call (as the app's start reads the store already), so a process with
        none is ready from the start."""
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
        thread = threading.Thread(target=self.preload_latest, args=(names,), daemon=True,
                                  name="warm-up")  # fmt: skip
        thread.start()

    def preload_latest(self, names: list[str] | None = None) -> None:
        """Load and warm the latest version of every model (up to the cache
        size), so the first requests do not pay for it; reports to `warmup`.
        A model none of whose versions loads counts as done, with a warning."""
        try:
            if names is None:
                names = self._list_for_warm_up()
            if names is None:
                return
            warmed = names[: self.cache_size]
            if len(names) > len(warmed):
                self.warmup.note(
                    f"{len(names) - len(warmed)} of {len(names)} models not warmed at start: "
                    f"the model cache holds {self.cache_size} (setting "
                    "FITSERVE_MODEL_CACHE_SIZE); they load on their first request"
                )
            self.warmup.expect(len(warmed))
            for name in warmed:
                try:
                    loaded = self.get(name)
                    self.warmup.loaded()
                    self._note_skipped_newest(name, loaded.version)
                except Exception as exc:  # a broken model must not hold readiness for good
                    log.warning("no loadable version of %s to preload: %s", name, exc)
                    message = exc.message if isinstance(exc, ServiceUnavailable) else repr(exc)
                    self.warmup.failed(name, message)
        finally:
            self.warmup.finish()

    def _note_skipped_newest(self, name: str, serving: int) -> None:
        """A warning when the newest version failed and an older one serves."""
        newest = self.catalog.latest_version(name)
        with self._lock:
            _, reason = self._failed.get((name, newest or 0), (0.0, ""))
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

    def predict(self, name: str, version: int | None, x: np.ndarray) -> Prediction:
        return self.get(name, version).run(x)

    def _get_exact(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with self._loading:  # one load at a time: concurrent first requests share it
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
                failed_at, reason = self._failed.get(key, (float("-inf"), ""))
            if time.monotonic() - failed_at < RETRY_FAILED_LOAD_S:
                raise ServiceUnavailable(
                    f"Model {name!r} version {version} failed to load: {reason}"
                )
            try:
                loaded = load_version(self.store, name, version)
                # Warm before the cache: a version takes no traffic cold.
                self._warm(loaded)
            except Exception as exc:  # a broken version must not take serving down
                log.exception("model %s version %s failed to load", name, version)
                with self._lock:
                    self._failed[key] = (time.monotonic(), f"{type(exc).__name__}: {exc}")
                raise ServiceUnavailable(
                    f"Model {name!r} version {version} failed to load: {type(exc).__name__}: {exc}"
                ) from None
            with self._lock:
                self._failed.pop(key, None)
                self._cache[key] = loaded
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return loaded
