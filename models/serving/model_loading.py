"""Loading a published version for serving, without Keras where it can.

A version whose manifest has a serving record (models.serving.serving_record)
is read straight from its `.keras` file into the numpy forward pass
(models.serving.keras_file), which serves once it gives the recorded outputs
on the probe batch: no Keras, JAX or TensorFlow in the process. Otherwise (a
version published before records, a layer or activation the numpy pass
refuses, outputs that disagree) Keras loads it, imported only then: the
numpy pass read off the Keras model serves if it matches Keras on the probe,
Keras itself if not. A file that is not what its config says fails to load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.serving import footprint
from models.serving.forward import ForwardPass, UnsupportedLayer
from models.serving.keras_file import read_forward_pass
from models.serving.loaded_model import LoadedModel
from models.serving.serving_record import (
    ServingRecord,
    agrees,
    probe_batch,
    regularization_penalty,
)
from models.storage.model_store import ModelStore
from models.training.class_labels import LabelEncoding

log = logging.getLogger(__name__)

# Of a version's manifest, what serving never reads: its per-epoch history (as
# long as its epochs) and its serving record stay in the store, not in memory.
NOT_HELD = ("history", "serving")


def load_version(store: ModelStore, name: str, version: int) -> LoadedModel:
    metadata = store.metadata(name, version)
    # A local copy (downloaded once per host from a bucket) whose hash matches
    # the manifest's: only files this service wrote are loaded.
    path = store.model_file(name, version)
    encoding = LabelEncoding(task=metadata["task"], classes=metadata["classes"], one_hot=True)
    record = ServingRecord.of(metadata)
    metadata = {key: value for key, value in metadata.items() if key not in NOT_HELD}
    forward = _recorded_forward(path, metadata["input_shape"], record) if record else None
    if record is not None and forward is not None:
        nbytes = footprint.numpy_version_bytes(forward)
        loaded = LoadedModel(name, version, metadata, encoding, forward, "numpy", nbytes,
                             record.regularization)  # fmt: skip
        reader = "read without Keras"
    else:
        loaded = _load_with_keras(path, name, version, metadata, encoding)
        reader = "read by Keras"
    log.info("loaded model %s version %s (%s forward pass, %s, %d bytes)", name, version,
             loaded.engine, reader, loaded.nbytes)  # fmt: skip
    return loaded


def _recorded_forward(
    path: Path, input_shape: list[int], record: ServingRecord
) -> ForwardPass | None:
    """The numpy pass read from the file, if it gives the recorded outputs."""
    try:
        forward = read_forward_pass(path, input_shape)
    except UnsupportedLayer as exc:
        log.info("loading with Keras: %s", exc.message)
        return None
    if not record.confirms(forward, input_shape):
        log.warning("loading with Keras: the numpy forward pass disagreed with the outputs "
                    "recorded at publish on the probe batch")  # fmt: skip
        return None
    return forward


def _load_with_keras(
    path: Path, name: str, version: int, metadata: dict[str, Any], encoding: LabelEncoding
) -> LoadedModel:
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    forward, engine = _fastest_faithful_forward(model, metadata["input_shape"])
    if isinstance(forward, ForwardPass):  # the Keras model is let go
        nbytes = footprint.numpy_version_bytes(forward)
    else:
        nbytes = footprint.keras_version_bytes(model)
    return LoadedModel(name, version, metadata, encoding, forward, engine, nbytes,
                       regularization_penalty(model))  # fmt: skip


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
    probe = probe_batch(input_shape)
    expected = keras_forward(probe)
    try:
        numpy_forward = ForwardPass.from_keras(model)
    except UnsupportedLayer as exc:
        log.warning("serving with Keras: %s", exc)
        return keras_forward, "keras"
    if not agrees(numpy_forward(probe), expected):
        log.warning("serving with Keras: the numpy forward pass disagreed on the probe batch")
        return keras_forward, "keras"
    return numpy_forward, "numpy"
