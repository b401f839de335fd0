"""A numpy forward pass for the networks our builder makes.

Serving a small dense network is a handful of matrix products; a framework
call costs far more than that arithmetic (`bench/serve.py` measures both).
The pass is read off a loaded Keras model's layers and weights, each layer's
step from its kind (models.layers), and the predictor checks it against Keras
on a probe batch before trusting it: a layer or activation it does not know
makes it refuse, and serving falls back to Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Callers import these from here: the numpy pass's activations and refusal.
from models.layers.activations import ACTIVATIONS as ACTIVATIONS
from models.layers.registry import kind_of_keras
from models.layers.serving_steps import Array, Step
from models.layers.serving_steps import UnsupportedLayer as UnsupportedLayer


class ForwardPass:
    """model(x, training=False), as numpy steps over float32 arrays."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    @classmethod
    def from_keras(cls, model: Any) -> ForwardPass:
        return cls([kind_of_keras(layer).serving_step(layer) for layer in model.layers])

    def __call__(self, x: Array) -> Array:
        for step in self.steps:
            x = step(x)
        return x if x.dtype == np.float32 else x.astype(np.float32)
