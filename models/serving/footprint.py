"""What a loaded version holds in memory (`LoadedModel.nbytes`), in bytes:
what a budget of loaded versions counts.

Measured by bench/version_footprint.py (this machine's CPU, JAX backend):
each model loaded 20-40 times in one process, every copy kept, the growth
per copy.

- Read into the numpy pass: the arrays its steps hold (`ForwardPass.nbytes`)
  plus 6.7-8.6 KB that tracemalloc sees beyond them (the metadata held, the
  steps' closures, the label encoding), growing with the layers: 6 KiB, and
  640 bytes per step. An iris model (4-16-3) holds 7.8 KB all told; the
  MNIST-sized 784-512-10, 1.63 MB.
- A Keras model (served by Keras): its variables (weights, and the
  optimizer's slots that `load_model` restores), plus Keras' objects and the
  backend's own buffers, which tracemalloc does not see. By RSS over four
  runs: iris 131-236 KB per copy (1.6 KB of variables), the seed's breast
  cancer model (4 dense layers) 451-520 KB (111 KB), the MNIST-sized model
  5.3-6.0 MB (4.9 MB). Fitted: 32 KiB, 80 KiB per layer, and the variables
  plus a tenth.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.serving.forward import ForwardPass

VERSION_BYTES = 6 << 10
STEP_BYTES = 640
KERAS_MODEL_BYTES = 32 << 10
KERAS_LAYER_BYTES = 80 << 10
KERAS_VARIABLE_FACTOR = 1.1


def numpy_version_bytes(forward: ForwardPass) -> int:
    """A version served by the numpy pass `forward`."""
    return forward.nbytes + VERSION_BYTES + STEP_BYTES * len(forward.steps)


def keras_version_bytes(model: Any) -> int:
    """A version served by the Keras model `model`."""
    layers = KERAS_LAYER_BYTES * len(model.layers)
    return KERAS_MODEL_BYTES + layers + int(KERAS_VARIABLE_FACTOR * variable_bytes(model))


def variable_bytes(model: Any) -> int:
    """The bytes of a Keras model's variables, its optimizer's included."""
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += model.optimizer.variables
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)
