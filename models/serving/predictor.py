"""Prediction: published versions loaded once into an in-process LRU cache.

Serving never calls `model.predict` per request (its per-call set-up costs far
more than the arithmetic of a small MLP). A loaded version runs the numpy
forward pass (models.serving.forward) once it has matched Keras on a probe batch, and
Keras' own inference call otherwise, in bounded chunks either way.

`latest` follows the store through the catalog (models.serving.catalog): a
newly published version is loaded on the first request after this process
learns of it. A version that fails to load never replaces a
working one (TF Serving's availability-preserving rule): requests for the
latest keep going to the newest version that loads, and the broken one is not
retried for a while.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import ServiceUnavailable
from models.serving.catalog import ModelCatalog
from models.serving.forward import ForwardPass, UnsupportedLayer
from models.storage.model_store import ModelStore
from models.training.labels import LabelEncoding

log = logging.getLogger(__name__)

CHUNK_ROWS = 8192
PROBE_ROWS = 16
RETRY_FAILED_LOAD_S = 30.0


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    metadata: dict[str, Any]
    encoding: LabelEncoding
    forward: Callable[[np.ndarray], np.ndarray]
    engine: str  # "numpy" or "keras": which forward pass serves it

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= CHUNK_ROWS:
            return self.forward(x)
        # Bounded chunks: a 100,000-row batch never builds one huge activation.
        out = np.empty((len(x), self.metadata["outputs"]), dtype=np.float32)
        for start in range(0, len(x), CHUNK_ROWS):
            out[start : start + CHUNK_ROWS] = self.forward(x[start : start + CHUNK_ROWS])
        return out

    def run(self, x: np.ndarray) -> Prediction:
        """Outputs and decoded labels for `x`."""
        outputs = self.predict(x)
        return Prediction(self.version, outputs, self.encoding.decode(outputs))


@dataclass(frozen=True)
class Prediction:
    version: int
    outputs: np.ndarray
    labels: list[Any] | None


class Predictor:
    def __init__(
        self, store: ModelStore, catalog: ModelCatalog | None = None, cache_size: int = 8
    ) -> None:
        self.store = store
        # Which versions exist: asked on every request, so cached for a remote store.
        self.catalog = catalog or ModelCatalog(store)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._failed: dict[tuple[str, int], tuple[float, str]] = {}
        self._pending: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._loading = threading.Lock()

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

    def _load_in_background(self, name: str, version: int) -> None:
        key = (name, version)
        with self._lock:
            failed_at, _ = self._failed.get(key, (float("-inf"), ""))
            if key in self._pending or time.monotonic() - failed_at < RETRY_FAILED_LOAD_S:
                return
            self._pending.add(key)

        def load() -> None:
            try:
                self._get_exact(name, version)
            except ServiceUnavailable:
                pass  # recorded in _failed; the older version keeps serving
            finally:
                with self._lock:
                    self._pending.discard(key)

        threading.Thread(target=load, name=f"load-{name}-{version}", daemon=True).start()

    def preload_latest(self) -> None:
        """Load the latest version of every model (up to the cache size), so the
        first requests do not pay for it."""
        for name in self.catalog.names()[: self.cache_size]:
            try:
                self.get(name)
            except ServiceUnavailable:
                log.warning("no loadable version of %s to preload", name)

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


def load_version(store: ModelStore, name: str, version: int) -> LoadedModel:
    import keras

    metadata = store.metadata(name, version)
    # A local copy (downloaded once per host from a bucket) whose hash matches
    # the manifest's: only files this service wrote are loaded.
    path = store.model_file(name, version)
    model = keras.saving.load_model(path, safe_mode=True)
    encoding = LabelEncoding(task=metadata["task"], classes=metadata["classes"], one_hot=True)
    forward, engine = _fastest_faithful_forward(model, metadata["input_shape"])
    loaded = LoadedModel(name, version, metadata, encoding, forward, engine)
    log.info("loaded model %s version %s (%s forward pass)", name, version, engine)
    return loaded


def _fastest_faithful_forward(
    model: Any, input_shape: list[int]
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    import keras

    # Keras models are not safe to call from several threads at once (on JAX,
    # concurrent calls fail inside variable access): one call at a time.
    lock = threading.Lock()

    def keras_forward(x: np.ndarray) -> np.ndarray:
        with lock:
            outputs = model(x, training=False)
        return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)

    # The probe also warms Keras up: its first call traces the network.
    probe = np.random.default_rng(0).normal(size=(PROBE_ROWS, *input_shape)).astype(np.float32)
    expected = keras_forward(probe)
    try:
        numpy_forward = ForwardPass.from_keras(model)
    except UnsupportedLayer as exc:
        log.warning("serving with Keras: %s", exc)
        return keras_forward, "keras"
    if not np.allclose(numpy_forward(probe), expected, rtol=1e-5, atol=1e-5):
        log.warning("serving with Keras: the numpy forward pass disagreed on the probe batch")
        return keras_forward, "keras"
    return numpy_forward, "numpy"
