"""What a worker records when it publishes a version, so that an API process
can trust the numpy forward pass without Keras: the Keras model's outputs on
a fixed probe batch, and its layers' regularization penalty on the stored
weights (which `:evaluate` adds to the loss, as Keras' `evaluate` does).

The record is the manifest's `serving` entry (16 rows of outputs: small).
The probe batch is arithmetic, not a random generator's stream, so the
worker and every API process make the same one whatever their numpy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.serving.forward import ForwardPass

log = logging.getLogger(__name__)

PROBE_ROWS = 16
# Names probe_batch's arithmetic: a record made with another probe is not used.
PROBE = "lattice-101"
# How close the numpy pass must come to Keras' outputs on the probe to serve.
RTOL = ATOL = 1e-5


def probe_batch(input_shape: list[int]) -> np.ndarray:
    """PROBE_ROWS samples of `input_shape`, spread over [-2, 2] in steps of 1/25."""
    size = PROBE_ROWS * math.prod(input_shape)
    # Exact integers, then one correctly rounded float32 division each.
    lattice = (np.arange(size, dtype=np.int64) * 7919) % 101 - 50
    return (lattice.astype(np.float32) / np.float32(25)).reshape(PROBE_ROWS, *input_shape)


def agrees(outputs: np.ndarray, expected: np.ndarray) -> bool:
    """Whether the numpy pass's outputs are Keras' to serve in its place."""
    if outputs.shape != expected.shape:
        return False
    return bool(np.allclose(outputs, expected, rtol=RTOL, atol=ATOL))


def serving_record(model: Any, input_shape: list[int]) -> dict[str, Any]:
    """The `serving` entry of a version's manifest, computed with Keras (in the worker)."""
    import keras

    with _full_float32_matmuls():
        outputs = model(probe_batch(input_shape), training=False)
    return {
        "probe": PROBE,
        "outputs": np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32).tolist(),
        "regularization": regularization_penalty(model),
    }


def regularization_penalty(model: Any) -> float:
    """The layers' regularization penalties on the model's weights (Keras' `model.losses`)."""
    import keras

    return sum(float(np.sum(keras.ops.convert_to_numpy(loss))) for loss in model.losses)


@contextmanager
def _full_float32_matmuls() -> Iterator[None]:
    """Matrix products in full float32, as numpy computes them: a GPU would
    otherwise use TF32 (a 10-bit mantissa) and the record miss by 1e-3."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        with jax.default_matmul_precision("float32"):
            yield
    elif backend == "tensorflow":
        import tensorflow as tf

        enabled = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            yield
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(enabled)
    else:
        yield


@dataclass(frozen=True)
class ServingRecord:
    """A version's `serving` entry, read back in an API process."""

    outputs: np.ndarray
    regularization: float

    @classmethod
    def of(cls, metadata: dict[str, Any]) -> ServingRecord | None:
        """The version's record; None for one published before records were
        kept (or with another probe), or whose record does not read."""
        record = metadata.get("serving")
        if not isinstance(record, dict) or record.get("probe") != PROBE:
            return None
        try:
            outputs = np.asarray(record["outputs"], dtype=np.float32)
            return cls(outputs, float(record["regularization"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("a serving record that does not read (%s): Keras checks instead", exc)
            return None

    def confirms(self, forward: ForwardPass, input_shape: list[int]) -> bool:
        """Whether `forward` gives the recorded outputs on the probe batch."""
        return agrees(forward(probe_batch(input_shape)), self.outputs)
