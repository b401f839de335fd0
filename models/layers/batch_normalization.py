"""`batch_normalization`: normalizes by each batch's statistics while
training and by their moving averages when serving, where it folds into
one scale and shift."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from models.layers.kind import LayerKind, LayerSpec, Shape
from models.layers.serving_steps import Array, Step, StoredLayer, UnsupportedLayer

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

    def stored_weights(self, config: dict[str, Any], inputs: Shape) -> dict[str, Shape]:
        _check_served(config)
        names = ["gamma"] * bool(config["scale"]) + ["beta"] * bool(config["center"])
        return {name: (inputs[-1],) for name in [*names, "moving_mean", "moving_variance"]}

    def serving_step(self, layer: StoredLayer) -> Step:
        config, weights = layer.config, layer.weights
        _check_served(config)
        # Folded into one scale and shift, as Keras computes it in inference mode.
        inverse = 1.0 / np.sqrt(weights["moving_variance"] + np.float32(config["epsilon"]))
        if config["scale"]:
            inverse = inverse * weights["gamma"]
        shift = -weights["moving_mean"] * inverse
        if config["center"]:
            shift = shift + weights["beta"]
        scale, offset = inverse.astype(np.float32), shift.astype(np.float32)

        def batch_normalization(x: Array) -> Array:
            return x * scale + offset

        return batch_normalization

    def parameters(self, layer: BatchNormalizationLayer, inputs: Shape) -> int:
        # gamma, beta, and the moving mean and variance, per feature.
        return 4 * math.prod(inputs)


def _check_served(config: dict[str, Any]) -> None:
    if config.get("axis", -1) not in (-1, [-1]) or config.get("renorm"):
        raise UnsupportedLayer(
            f"BatchNormalization {config.get('name')!r} on a non-last axis, or renormalizing"
        )


BATCH_NORMALIZATION = BatchNormalization()
