"""A numpy forward pass for the networks our builder makes.

Serving a small dense network is a handful of matrix products; a framework
call costs far more than that arithmetic (`bench/serve.py` measures both).
Each layer's step comes from its kind (models.layers), built from the layer's
config and weights: read straight from a `.keras` file
(models.serving.keras_file), or off a loaded Keras model (`from_keras`). The
pass is checked against Keras' outputs on a probe batch before it is trusted
(models.serving.serving_record): a layer or activation it does not know makes
it refuse, and serving falls back to Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Callers import these from here: the numpy pass's activations and refusal.
from models.layers.activations import ACTIVATIONS as ACTIVATIONS
from models.layers.registry import kind_of_keras
from models.layers.serving_steps import Array, Step, StoredLayer
from models.layers.serving_steps import UnsupportedLayer as UnsupportedLayer


class ForwardPass:
    """model(x, training=False), as numpy steps over float32 arrays."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    @classmethod
    def from_keras(cls, model: Any) -> ForwardPass:
        """The pass of a Keras model's layers (which Keras has imported)."""
        import keras

        steps = []
        for layer in model.layers:
            kind = kind_of_keras(layer)
            weights = {variable.name: np.asarray(keras.ops.convert_to_numpy(variable),
                                                 dtype=np.float32)
                       for variable in layer.weights}  # fmt: skip
            steps.append(kind.serving_step(StoredLayer(layer.name, layer.get_config(), weights)))
        return cls(steps)

    @property
    def nbytes(self) -> int:
        """The bytes of the arrays its steps hold (a weight held twice counts once)."""
        arrays = {}
        for step in self.steps:
            for cell in getattr(step, "__closure__", None) or ():
                if isinstance(cell.cell_contents, np.ndarray):
                    arrays[id(cell.cell_contents)] = cell.cell_contents
        return sum(array.nbytes for array in arrays.values())

    def __call__(self, x: Array) -> Array:
        for step in self.steps:
            x = step(x)
        return x if x.dtype == np.float32 else x.astype(np.float32)
