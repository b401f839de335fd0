"""Many published models, made fast: two networks trained for real (once
each, by a training job run in this process the way a worker runs it), then
each trained file published again under many names through
`ModelStore.publish`, as many versions as the benchmark wants at about a
millisecond each instead of a training job each.

`small`: iris-sized (4 features, Dense(16) + softmax over 3 classes, the
examples' iris program). `wide`: MNIST-sized (784 features, Dense(512) +
softmax over 10 classes, on synthetic rows: the weights' size is what counts).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.examples import EXAMPLES
from bench.seed_model import one_row, publish_in_process
from models.serving.catalog import announce_changes
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore

WIDE_FEATURES = 784
WIDE_SPEC = {
    "input_shape": [WIDE_FEATURES],
    "layers": [{"type": "dense", "units": 512, "activation": "relu"},
               {"type": "dense", "units": 10, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 128},
    "seed": 5,
}  # fmt: skip
# The manifest's own fields: publish writes them anew for each copy. The job
# goes too: a copy is no job's version.
_NOT_COPIED = ("name", "version", "model_sha256", "job")


@dataclass(frozen=True)
class TrainedModel:
    """A trained version's file and metadata, to publish again under other names."""

    file: Path
    metadata: dict[str, Any]

    @property
    def features(self) -> int:
        return int(np.prod(self.metadata["input_shape"]))

    @property
    def one_row(self) -> bytes:
        """A one-row JSON `:predict` body for it."""
        return one_row(self.features)

    @property
    def weight_bytes(self) -> int:
        """Its weights' bytes in float32 (dense layers: inputs x units + units)."""
        widths = [self.features] + [layer["units"] for layer in self.metadata["spec"]["layers"]]
        return 4 * sum((inputs + 1) * units for inputs, units in pairwise(widths))

    def publish_as(self, store: ModelStore, name: str) -> int:
        """Publish the file as a new version of `name`; its version."""
        return store.publish(name, self._write, self.metadata)

    def _write(self, path: Path) -> None:
        shutil.copyfile(self.file, path)

    @classmethod
    def published(cls, store: ModelStore, name: str, version: int) -> TrainedModel:
        metadata = store.metadata(name, version)
        kept = {key: value for key, value in metadata.items() if key not in _NOT_COPIED}
        return cls(store.model_file(name, version), kept)


def train_small_and_wide(settings: Settings, small_name: str, wide_name: str) -> tuple[
    TrainedModel, TrainedModel]:  # fmt: skip
    """Train both networks and publish them as version 1 of the two names."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    small_spec = json.loads((EXAMPLES / "iris.json").read_text())["spec"]
    small_spec["fit"]["epochs"] = 5
    publish_in_process(settings, small_name, small_spec, iris.data, iris.target)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1024, WIDE_FEATURES)).round(3)
    y = np.argmax(x @ rng.normal(size=(WIDE_FEATURES, 10)), axis=1)
    publish_in_process(settings, wide_name, WIDE_SPEC, x, y)
    store = ModelStore(open_blobs(settings))
    return TrainedModel.published(store, small_name, 1), TrainedModel.published(store, wide_name, 1)


def announcing_store(settings: Settings) -> ModelStore:
    """The store of `settings` announcing each publish on Redis, as a
    worker's does: every API process's catalog learns of it at once."""
    client = redis.Redis.from_url(settings.redis_url)
    announce = announce_changes(client, settings.redis_prefix)
    return ModelStore(open_blobs(settings), on_change=announce)
