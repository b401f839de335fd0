"""The versions an API process holds loaded, within a budget in bytes.

TF Serving and Triton keep every model of their configuration loaded;
ModelMesh keeps as many as a pod's memory budget holds and loads the rest
on demand. This is the latter's rule for one process: each loaded version
says what it holds (`LoadedModel.nbytes`), their sum stays within
`FITSERVE_MODEL_CACHE_BYTES`, and room is made by dropping versions least
recently used, those nobody wants kept (neither a model's latest nor a
labelled version: the predictor says which) before the others.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from models.serving.loaded_model import LoadedModel

Key = tuple[str, int]


class ModelMemory:
    """Loaded versions by (model, version), least recently used first. Thread-safe."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._loaded: OrderedDict[Key, LoadedModel] = OrderedDict()
        self._held = 0
        # Versions dropped to make room since the process started (metrics, tests).
        self.evictions = 0

    def get(self, key: Key) -> LoadedModel | None:
        """The version, marked as just used; None when it is not held."""
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None:
                self._loaded.move_to_end(key)
            return loaded

    def peek(self, key: Key) -> LoadedModel | None:
        """The version, leaving its place in the order alone."""
        with self._lock:
            return self._loaded.get(key)

    def __contains__(self, key: Key) -> bool:
        with self._lock:
            return key in self._loaded

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded)

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._held

    def keys(self) -> list[Key]:
        """What is held, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def fits(self, nbytes: int) -> bool:
        """Whether a version of `nbytes` could ever be held."""
        return nbytes <= self.budget_bytes

    def room(self, wanted: Callable[[Key], bool]) -> int:
        """Bytes a version kept loaded could take now: what is free, and
        what the versions nobody wants hold."""
        keys = set(self.keys())
        unwanted = {key for key in keys if not wanted(key)}
        with self._lock:
            return (
                self.budget_bytes
                - self._held
                + sum(self._loaded[key].nbytes for key in unwanted if key in self._loaded)
            )

    def put(
        self, loaded: LoadedModel, wanted: Callable[[Key], bool], *, evict_wanted: bool
    ) -> bool:
        """Hold `loaded`, dropping versions to make room: unwanted ones first,
        least recently used first, then (only with `evict_wanted`) wanted
        ones. False, holding nothing new and dropping nothing, when it does
        not fit so. `wanted` is asked outside the lock, and only when room
        must be made (it may read the catalog)."""
        key = (loaded.name, loaded.version)
        with self._lock:
            if self._hold(key, loaded, []):
                return True
        kept = {other for other in self.keys() if other != key and wanted(other)}
        with self._lock:
            unwanted = [other for other in self._loaded if other not in kept]
            others = [other for other in self._loaded if other in kept]
            return self._hold(key, loaded, unwanted + (others if evict_wanted else []))

    def _hold(self, key: Key, loaded: LoadedModel, candidates: list[Key]) -> bool:
        """Under the lock: hold `loaded` if dropping some of `candidates`, in
        their order, makes room for it; else change nothing."""
        previous = self._loaded.get(key)
        needed = self._held - (previous.nbytes if previous else 0)
        needed += loaded.nbytes - self.budget_bytes
        victims = []
        for other in candidates:
            if needed <= 0:
                break
            if other != key:
                victims.append(other)
                needed -= self._loaded[other].nbytes
        if needed > 0:
            return False
        for other in victims:
            self._held -= self._loaded.pop(other).nbytes
        self.evictions += len(victims)
        if previous is not None:
            self._held -= self._loaded.pop(key).nbytes
        self._loaded[key] = loaded
        self._held += loaded.nbytes
        return True

    def drop(self, predicate: Callable[[Key], bool]) -> list[Key]:
        """Drop every version `predicate` picks (deleted ones); what was dropped."""
        with self._lock:
            dropped = [key for key in self._loaded if predicate(key)]
            for key in dropped:
                self._held -= self._loaded.pop(key).nbytes
            return dropped
