"""A numpy forward pass for the networks our builder makes.

Serving a small dense network is a handful of matrix products; a framework
call costs far more than that arithmetic (about 1-4 ms for `model(x)`, 90 ms
for `model.predict` on TensorFlow, against tens of microseconds here). The
pass is read off a loaded Keras model's layers and weights, and the predictor
checks it against Keras on a probe batch before trusting it: a layer or
activation it does not know makes it refuse, and serving falls back to Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from models.errors import FitserveError

Array = np.ndarray
Step = Callable[[Array], Array]

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


# Keras 3's definitions (keras.activations), in float32.
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


class UnsupportedLayer(FitserveError):
    """The model holds something this pass does not implement: serve it with Keras."""

    code = "unsupported_layer"


class ForwardPass:
    """model(x, training=False), as numpy steps over float32 arrays."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    @classmethod
    def from_keras(cls, model: Any) -> ForwardPass:
        return cls([_step(layer) for layer in model.layers])

    def __call__(self, x: Array) -> Array:
        for step in self.steps:
            x = step(x)
        return x if x.dtype == np.float32 else x.astype(np.float32)


def _step(layer: Any) -> Step:
    kind = type(layer).__name__
    if kind == "Dense":
        return _dense(layer)
    if kind == "Dropout":
        return lambda x: x  # inference mode: dropout is the identity
    if kind == "Flatten":
        return lambda x: x.reshape(len(x), -1)
    if kind == "BatchNormalization":
        return _batch_normalization(layer)
    if kind == "Normalization":
        return _normalization(layer)
    raise UnsupportedLayer(f"No numpy forward pass for layer {layer.name!r} ({kind})")


def _dense(layer: Any) -> Step:
    config = layer.get_config()
    activation = config["activation"]
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise UnsupportedLayer(f"No numpy activation {activation!r} (layer {layer.name!r})")
    # For a row or a few the numpy calls' own cost is most of the time: y is
    # the product's new array, so the bias and the activation go into it
    # where the activation can work in place.
    activate = IN_PLACE.get(activation) or ACTIVATIONS[activation]
    # Contiguous float32, as the matrix product reads them fastest.
    kernel = np.ascontiguousarray(_float32(layer.kernel))
    bias = np.ascontiguousarray(_float32(layer.bias)) if config["use_bias"] else None

    def dense(x: Array) -> Array:
        y = np.dot(x, kernel)
        if bias is not None:
            y += bias
        return activate(y)

    return dense


def _batch_normalization(layer: Any) -> Step:
    config = layer.get_config()
    if config.get("axis", -1) not in (-1, [-1]) or config.get("renorm"):
        raise UnsupportedLayer(f"BatchNormalization {layer.name!r} on a non-last axis")
    # Folded into one scale and shift, as Keras computes it in inference mode.
    inverse = 1.0 / np.sqrt(_float32(layer.moving_variance) + np.float32(config["epsilon"]))
    if config["scale"]:
        inverse = inverse * _float32(layer.gamma)
    shift = -_float32(layer.moving_mean) * inverse
    if config["center"]:
        shift = shift + _float32(layer.beta)
    scale, offset = inverse.astype(np.float32), shift.astype(np.float32)
    return lambda x: x * scale + offset


def _normalization(layer: Any) -> Step:
    import keras

    config = layer.get_config()
    # Ours is adapted over the last axis; a fixed mean in the config, or the
    # inverse transform, is some other model's.
    if config["invert"] or config["mean"] is not None or tuple(config["axis"]) != (-1,):
        raise UnsupportedLayer(f"Normalization {layer.name!r} is not adapted over the last axis")
    weights = {variable.name: variable for variable in layer.weights}
    mean = _float32(weights["mean"])
    # Keras' own formula, in the same order, so float32 rounding agrees too.
    divisor = np.maximum(np.sqrt(_float32(weights["variance"])), np.float32(keras.config.epsilon()))
    return lambda x: (x - mean) / divisor


def _float32(variable: Any) -> Array:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
