"""`dense`: a fully connected layer, the only kind with an activation and the
only one the head may be. Its kernel regularizer's l1 and l2 may differ
between trials of one vmapped group: the program penalizes the kernel with
traced factors instead of Keras' Python floats (`L1L2` skips a zero factor,
a traced one adds an exact zero). Having a regularizer or not splits groups.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from models.layers.activations import ACTIVATIONS, IN_PLACE, Activation
from models.layers.kind import LayerKind, LayerSpec, Shape, replaced
from models.layers.serving_steps import Array, Step, StoredLayer, UnsupportedLayer
from models.validation import StrictModel

if TYPE_CHECKING:
    import keras

MAX_UNITS = 16_384


class Regularizer(StrictModel):
    l1: Annotated[float, Field(ge=0, le=1)] = 0.0
    l2: Annotated[float, Field(ge=0, le=1)] = 0.0


class DenseLayer(LayerSpec):
    type: Literal["dense"]
    units: Annotated[int, Field(ge=1, le=MAX_UNITS)]
    activation: Activation = "linear"
    use_bias: bool = True
    kernel_regularizer: Regularizer | None = None


class Dense(LayerKind):
    spec = DenseLayer
    keras_class = "Dense"
    per_trial_fields: ClassVar[tuple[str, ...]] = (
        "kernel_regularizer.l1",
        "kernel_regularizer.l2",
    )

    def build(self, layer: DenseLayer, dtype: str) -> keras.layers.Layer:
        import keras

        regularizer = None
        if layer.kernel_regularizer is not None:
            regularizer = keras.regularizers.L1L2(
                l1=layer.kernel_regularizer.l1, l2=layer.kernel_regularizer.l2
            )
        return keras.layers.Dense(
            layer.units,
            activation=layer.activation,
            use_bias=layer.use_bias,
            kernel_regularizer=regularizer,
            dtype=dtype,
        )

    def stored_weights(self, config: dict[str, Any], inputs: Shape) -> dict[str, Shape]:
        if config.get("quantization_config") or config.get("lora_rank"):
            raise UnsupportedLayer(f"Dense {config.get('name')!r} is quantized or has LoRA")
        weights: dict[str, Shape] = {"kernel": (inputs[-1], config["units"])}
        if config["use_bias"]:
            weights["bias"] = (config["units"],)
        return weights

    def serving_step(self, layer: StoredLayer) -> Step:
        activation = layer.config["activation"]
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise UnsupportedLayer(f"No numpy activation {activation!r} (layer {layer.name!r})")
        # For a row or a few the numpy calls' own cost is most of the time: y is
        # the product's new array, so the bias and the activation go into it
        # where the activation can work in place.
        activate = IN_PLACE.get(activation) or ACTIVATIONS[activation]
        # Contiguous float32, as the matrix product reads them fastest.
        kernel = np.ascontiguousarray(layer.weights["kernel"])
        bias = None
        if layer.config["use_bias"]:
            bias = np.ascontiguousarray(layer.weights["bias"])

        def dense(x: Array) -> Array:
            y = np.dot(x, kernel)
            if bias is not None:
                y += bias
            return activate(y)

        return dense

    def parameters(self, layer: DenseLayer, inputs: Shape) -> int:
        return math.prod(inputs) * layer.units + (layer.units if layer.use_bias else 0)

    def output_shape(self, layer: DenseLayer, inputs: Shape) -> Shape:
        return (layer.units,)

    def is_traced(self, layer: DenseLayer) -> bool:
        return layer.kernel_regularizer is not None

    @contextmanager
    def tracing_with(self, keras_layer: Any, values: Any) -> Iterator[None]:
        """keras/src/regularizers' L1L2 arithmetic, its branches on zero left out."""
        import jax.numpy as jnp

        def regularize(x: Any) -> Any:
            regularization = jnp.zeros((), dtype=x.dtype)
            regularization += values[0].astype(x.dtype) * jnp.sum(jnp.abs(x))
            regularization += values[1].astype(x.dtype) * jnp.sum(jnp.square(x))
            return regularization

        with replaced(keras_layer.kernel, "regularizer", regularize):
            yield

    def write_trial_values(self, keras_layer: Any, layer: DenseLayer) -> None:
        if layer.kernel_regularizer is not None:
            keras_layer.kernel_regularizer.l1 = layer.kernel_regularizer.l1
            keras_layer.kernel_regularizer.l2 = layer.kernel_regularizer.l2


DENSE = Dense()
