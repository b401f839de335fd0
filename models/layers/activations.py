"""The activations a dense layer may name, and their numpy forms for serving.

Keras 3's definitions (keras.activations), in float32. The numpy pass checks
itself against Keras on a probe batch before it serves, so a form that drifts
from Keras' makes serving fall back to Keras rather than answer differently.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special

from models.layers.serving_steps import Array, Step

Activation = Literal[
    "linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu",
    "swish", "silu", "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid",
    "exponential", "mish",
]  # fmt: skip

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
SQRT2 = np.sqrt(np.float32(2))


def _sigmoid(x: Array) -> Array:
    return special.expit(x)


def _softmax(x: Array) -> Array:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _elu(x: Array) -> Array:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _softplus(x: Array) -> Array:
    return np.logaddexp(np.float32(0), x)


ACTIVATIONS: dict[str, Step] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "sigmoid": _sigmoid,
    "softmax": _softmax,
    "tanh": np.tanh,
    "elu": _elu,
    "selu": lambda x: np.float32(SELU_SCALE) * np.where(
        x > 0, x, np.float32(SELU_ALPHA) * np.expm1(np.minimum(x, 0))
    ),
    "gelu": lambda x: np.float32(0.5) * x * (np.float32(1) + special.erf(x / SQRT2)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "softplus": _softplus,
    "softsign": lambda x: x / (np.float32(1) + np.abs(x)),
    "leaky_relu": lambda x: np.where(x >= 0, x, np.float32(0.2) * x),
    "relu6": lambda x: np.clip(x, np.float32(0), np.float32(6)),
    "hard_sigmoid": lambda x: np.clip(x + np.float32(3), 0, 6) / np.float32(6),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(_softplus(x)),
}  # fmt: skip


# The activations that may write into their argument (a fresh array), and
# give the same float32 values as ACTIVATIONS'.
IN_PLACE: dict[str, Step] = {
    "linear": lambda y: y,
    "relu": lambda y: np.maximum(y, np.float32(0), out=y),
    "sigmoid": lambda y: special.expit(y, out=y),
    "tanh": lambda y: np.tanh(y, out=y),
    "exponential": lambda y: np.exp(y, out=y),
}
