"""Spec -> compiled keras.Sequential, built by our own code from the allow-list.

Backend-neutral: only `keras` APIs, so the same code runs on JAX, TensorFlow
or torch and the saved `.keras` file loads under any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.layers.registry import kind_of, kind_of_keras
from models.training.spec import ModelSpec, Optimizer

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
        model.add(kind_of(layer).build(layer, "float32" if is_head else hidden_dtype))
    model.compile(
        optimizer=build_optimizer(spec.compile.optimizer_options),
        loss=spec.compile.loss,
        metrics=list(spec.compile.metrics),
    )
    return model


def adapt(model: keras.Sequential, x_train: np.ndarray) -> None:
    """Adapt the network's layers that adapt (a normalization) on the training
    rows (never the validation rows): what they learn becomes weights, saved
    with the model. The spec puts such a layer first or after a first flatten."""
    for index, layer in enumerate(model.layers):
        if kind_of_keras(layer).adapts:
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
