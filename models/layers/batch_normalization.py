"""`batch_normalization`: normalizes by each batch's statistics while
training and by their moving averages when serving, where it folds into
one scale and shift."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from models.layers.kind import LayerKind, LayerSpec, Shape
from models.layers.serving_steps import Array, Step, UnsupportedLayer, float32_weights

if TYPE_CHECKING:
    import keras


class BatchNormalizationLayer(LayerSpec):
    type: Literal["batch_normalization"]
    momentum: Annotated[float, Field(gt=0, lt=1)] = 0.99
    epsilon: Annotated[float, Field(gt=0, le=1)] = 0.001


class BatchNormalization(LayerKind):
    spec = BatchNormalizationLayer
    keras_class = "BatchNormalization"

    def build(self, layer: BatchNormalizationLayer, dtype: str) -> keras.layers.Layer:
        import keras

        return keras.layers.BatchNormalization(
            momentum=layer.momentum, epsilon=layer.epsilon, dtype=dtype
        )

    def serving_step(self, keras_layer: Any) -> Step:
        config = keras_layer.get_config()
        if config.get("axis", -1) not in (-1, [-1]) or config.get("renorm"):
            raise UnsupportedLayer(f"BatchNormalization {keras_layer.name!r} on a non-last axis")
        # Folded into one scale and shift, as Keras computes it in inference mode.
        variance = float32_weights(keras_layer.moving_variance)
        inverse = 1.0 / np.sqrt(variance + np.float32(config["epsilon"]))
        if config["scale"]:
            inverse = inverse * float32_weights(keras_layer.gamma)
        shift = -float32_weights(keras_layer.moving_mean) * inverse
        if config["center"]:
            shift = shift + float32_weights(keras_layer.beta)
        scale, offset = inverse.astype(np.float32), shift.astype(np.float32)

        def batch_normalization(x: Array) -> Array:
            return x * scale + offset

        return batch_normalization

    def parameters(self, layer: BatchNormalizationLayer, inputs: Shape) -> int:
        # gamma, beta, and the moving mean and variance, per feature.
        return 4 * math.prod(inputs)


BATCH_NORMALIZATION = BatchNormalization()
