"""`flatten`: one feature axis from the input's several. A spec whose input
has more than one axis needs one before its first dense layer."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from models.layers.kind import LayerKind, LayerSpec, Shape
from models.layers.serving_steps import Array, Step, StoredLayer

if TYPE_CHECKING:
    import keras


class FlattenLayer(LayerSpec):
    type: Literal["flatten"]


class Flatten(LayerKind):
    spec = FlattenLayer
    keras_class = "Flatten"

    def build(self, layer: FlattenLayer, dtype: str) -> keras.layers.Layer:
        import keras

        return keras.layers.Flatten(dtype=dtype)

    def serving_step(self, layer: StoredLayer) -> Step:
        return _flatten

    def output_shape(self, layer: FlattenLayer, inputs: Shape) -> Shape:
        return (math.prod(inputs),)


def _flatten(x: Array) -> Array:
    return x.reshape(len(x), -1)


FLATTEN = Flatten()
