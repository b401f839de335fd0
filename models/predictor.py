"""Prediction: published versions loaded once into an in-process LRU cache.

Serving never calls `model.predict` per request (its per-call set-up costs far
more than the arithmetic of a small MLP); it calls the model directly, in
inference mode, on bounded chunks so a large batch does not build one huge
intermediate tensor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.labels import LabelEncoding
from models.store import ModelStore

CHUNK_ROWS = 8192


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    model: Any
    metadata: dict[str, Any]
    encoding: LabelEncoding

    def predict(self, x: np.ndarray) -> np.ndarray:
        import keras

        chunks = [
            keras.ops.convert_to_numpy(self.model(x[start : start + CHUNK_ROWS], training=False))
            for start in range(0, len(x), CHUNK_ROWS)
        ]
        return np.concatenate(chunks).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Prediction:
    version: int
    outputs: np.ndarray
    labels: list[Any] | None


class Predictor:
    def __init__(self, store: ModelStore, cache_size: int = 8) -> None:
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        resolved = self.store.resolve(name, version)
        key = (name, resolved)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        loaded = self._load(name, resolved)
        with self._lock:
            self._cache[key] = loaded
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return loaded

    def predict(self, name: str, version: int | None, x: np.ndarray) -> Prediction:
        loaded = self.get(name, version)
        outputs = loaded.predict(x)
        return Prediction(loaded.version, outputs, loaded.encoding.decode(outputs))

    def _load(self, name: str, version: int) -> LoadedModel:
        import keras

        metadata = self.store.metadata(name, version)
        model = keras.saving.load_model(self.store.model_path(name, version), safe_mode=True)
        encoding = LabelEncoding(
            task=metadata["task"],
            classes=metadata["classes"],
            one_hot=True,
        )
        loaded = LoadedModel(name, version, model, metadata, encoding)
        # Warm up: the first call traces the forward pass; pay it here, not in a request.
        loaded.predict(np.zeros((1, *metadata["input_shape"]), dtype=np.float32))
        return loaded
