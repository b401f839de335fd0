"""`dropout`: zeroes a fraction `rate` of its inputs while training, the
identity when serving. Its rate may differ between trials of one vmapped
group: the program drops with a traced rate, by the arithmetic of Keras' JAX
dropout. Zero against non-zero still splits groups: Keras gives a dropout
layer a seed generator (state) only for a rate above zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from models.layers.kind import LayerKind, LayerSpec, calling
from models.layers.serving_steps import Array, Step, StoredLayer

if TYPE_CHECKING:
    import keras


class DropoutLayer(LayerSpec):
    type: Literal["dropout"]
    rate: Annotated[float, Field(ge=0, lt=1)]


class Dropout(LayerKind):
    spec = DropoutLayer
    keras_class = "Dropout"
    per_trial_fields: ClassVar[tuple[str, ...]] = ("rate",)
    split_on_zero: ClassVar[tuple[str, ...]] = ("rate",)

    def build(self, layer: DropoutLayer, dtype: str) -> keras.layers.Layer:
        import keras

        return keras.layers.Dropout(layer.rate, dtype=dtype)

    def serving_step(self, layer: StoredLayer) -> Step:
        return _identity  # inference mode: dropout is the identity

    def is_traced(self, layer: DropoutLayer) -> bool:
        return layer.rate > 0

    @contextmanager
    def tracing_with(self, keras_layer: Any, values: Any) -> Iterator[None]:
        """keras/src/backend/jax/random.py's `dropout`: a Bernoulli mask of
        `1 - rate` from the layer's seed generator, survivors scaled by
        `1 / (1 - rate)`, with its Python branches on the rate left out."""
        import jax
        import jax.numpy as jnp

        def call(inputs: Any, training: bool = False) -> Any:
            if not training:
                return inputs
            # Keras' Python float rate: a float32 mask probability, and a divisor
            # in the inputs' dtype (bfloat16 under mixed precision).
            keep = 1.0 - values[0]
            seed = keras_layer.seed_generator.next()
            mask = jax.random.bernoulli(seed, p=keep, shape=inputs.shape)
            scaled = inputs / keep.astype(inputs.dtype)
            return jax.lax.select(mask, scaled, jnp.zeros_like(inputs))

        with calling(keras_layer, call):
            yield

    def write_trial_values(self, keras_layer: Any, layer: DropoutLayer) -> None:
        keras_layer.rate = layer.rate


def _identity(x: Array) -> Array:
    return x


DROPOUT = Dropout()
