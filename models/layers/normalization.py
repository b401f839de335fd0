"""`normalization`: Keras' `Normalization` over the last axis, its mean and
variance adapted on the training rows before fitting and saved with the
model. Built in float32 whatever the precision: it reads raw features, whose
spread bfloat16 (8 bits of mantissa) would blur before they are centred.
With k-fold validation each member adapts on its own fold, so the vmapped
program remakes the constants Keras' `call` reads from each member's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from models.layers.kind import LayerKind, LayerSpec, Shape, calling
from models.layers.serving_steps import (
    KERAS_EPSILON,
    Array,
    Step,
    StoredLayer,
    UnsupportedLayer,
)

if TYPE_CHECKING:
    import keras


class NormalizationLayer(LayerSpec):
    """Keras' `Normalization` over the last axis: its mean and variance are
    adapted on the raw inputs of the training split before fitting, and saved
    with the model. It must be the first layer, or directly follow a first
    `flatten`; one per network."""

    type: Literal["normalization"]


class Normalization(LayerKind):
    spec = NormalizationLayer
    keras_class = "Normalization"
    adapts = True

    def build(self, layer: NormalizationLayer, dtype: str) -> keras.layers.Layer:
        import keras

        return keras.layers.Normalization(axis=-1, dtype="float32")

    def stored_weights(self, config: dict[str, Any], inputs: Shape) -> dict[str, Shape]:
        _check_served(config)
        # Keras' `count` is a scalar kept for old saved models.
        return {"mean": (inputs[-1],), "variance": (inputs[-1],), "count": ()}

    def serving_step(self, layer: StoredLayer) -> Step:
        _check_served(layer.config)
        mean = layer.weights["mean"]
        # Keras' own formula, in the same order, so float32 rounding agrees too.
        deviation = np.sqrt(layer.weights["variance"])
        divisor = np.maximum(deviation, KERAS_EPSILON)

        def normalization(x: Array) -> Array:
            return (x - mean) / divisor

        return normalization

    def parameters(self, layer: NormalizationLayer, inputs: Shape) -> int:
        # A mean and a variance per feature of the last axis, and Keras'
        # `count` (a scalar kept for old saved models).
        return 2 * inputs[-1] + 1

    @contextmanager
    def tracing_per_member(self, keras_layer: Any) -> Iterator[None]:
        """Keras keeps the adapted values twice: as non-trainable variables
        (`adapt_mean`, `adapt_variance`, part of each member's state) and as
        plain tensors (`mean`, `variance`, made from those by
        `finalize_state`) that `call` reads; traced, those tensors would be
        one constant for every member, the last model's. So `call` first
        remakes them from the variables, which inside `stateless_call` hold
        the member's traced values, and puts Keras' tensors back after."""
        keras_call = type(keras_layer).call

        def call(inputs: Any) -> Any:
            constants = keras_layer.mean, keras_layer.variance
            keras_layer.finalize_state()
            try:
                return keras_call(keras_layer, inputs)
            finally:
                keras_layer.mean, keras_layer.variance = constants

        with calling(keras_layer, call):
            yield


def _check_served(config: dict[str, Any]) -> None:
    # Ours is adapted over the last axis; a fixed mean in the config, or the
    # inverse transform, is some other model's.
    if config["invert"] or config["mean"] is not None or tuple(config["axis"]) != (-1,):
        raise UnsupportedLayer(
            f"Normalization {config.get('name')!r} is not adapted over the last axis"
        )


NORMALIZATION = Normalization()
