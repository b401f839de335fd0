"""Spec -> compiled keras.Sequential, built by our own code from the allow-list.

Backend-neutral: only `keras` APIs, so the same code runs on JAX, TensorFlow
or torch and the saved `.keras` file loads under any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.training.spec import (
    BatchNormalizationLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    ModelSpec,
    NormalizationLayer,
    Optimizer,
)

if TYPE_CHECKING:
    import keras
    import numpy as np

_OPTIMIZER_CLASSES = {
    "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "nadam": "Nadam",
    "adagrad": "Adagrad", "adamw": "AdamW",
}  # fmt: skip


def build_model(spec: ModelSpec) -> keras.Sequential:
    """The network of `spec`, compiled, with fresh weights from the global seed."""
    import keras

    model = keras.Sequential(name="fitserve")
    model.add(keras.Input(shape=tuple(spec.input_shape), name="x"))
    hidden_dtype = spec.precision  # a per-layer policy: no global state shared by jobs
    for index, layer in enumerate(spec.layers):
        is_head = index == len(spec.layers) - 1
        model.add(_build_layer(layer, "float32" if is_head else hidden_dtype))
    model.compile(
        optimizer=build_optimizer(spec.compile.optimizer_options),
        loss=spec.compile.loss,
        metrics=list(spec.compile.metrics),
    )
    return model


def adapt(model: keras.Sequential, x_train: np.ndarray) -> None:
    """Adapt the network's normalization layer, if it has one, on the training
    rows (never the validation rows): its mean and variance become weights,
    saved with the model. The spec puts it first or after a first flatten."""
    import keras

    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt(x_train if index == 0 else x_train.reshape(len(x_train), -1))


def build_optimizer(options: Optimizer) -> keras.optimizers.Optimizer:
    import keras

    arguments: dict[str, Any] = {
        key: value
        for key, value in options.model_dump(exclude={"name"}).items()
        if value is not None
    }
    optimizer_class = getattr(keras.optimizers, _OPTIMIZER_CLASSES[options.name])
    return optimizer_class(**arguments)


def _build_layer(layer: Any, dtype: str) -> keras.layers.Layer:
    import keras

    if isinstance(layer, DenseLayer):
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
    if isinstance(layer, DropoutLayer):
        return keras.layers.Dropout(layer.rate, dtype=dtype)
    if isinstance(layer, FlattenLayer):
        return keras.layers.Flatten(dtype=dtype)
    if isinstance(layer, BatchNormalizationLayer):
        return keras.layers.BatchNormalization(
            momentum=layer.momentum, epsilon=layer.epsilon, dtype=dtype
        )
    if isinstance(layer, NormalizationLayer):
        # float32 whatever the precision: it reads raw features, whose spread
        # bfloat16 (8 bits of mantissa) would blur before they are centred.
        return keras.layers.Normalization(axis=-1, dtype="float32")
    raise TypeError(f"No builder for layer {layer!r}")  # unreachable: the spec is closed
