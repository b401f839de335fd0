"""Spec -> compiled keras.Sequential."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from typing import Any

import keras
import pytest

from models.training.builder import adapt, build_model
from models.training.spec import ModelSpec


def dense(units: int, activation: str = "linear", **extra: Any) -> dict[str, Any]:
    return {"type": "dense", "units": units, "activation": activation, **extra}


def make_spec(
    layers: list[dict[str, Any]],
    loss: str,
    input_shape: list[int] | None = None,
    optimizer: str | dict[str, Any] = "adam",
    metrics: list[str] | None = None,
) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "input_shape": input_shape or [30],
            "layers": layers,
            "compile": {"loss": loss, "optimizer": optimizer, "metrics": metrics or []},
            "fit": {"epochs": 1, "batch_size": 10},
        }
    )


def binary_spec(**changes: Any) -> ModelSpec:
    layers = [dense(60, "relu"), dense(60, "relu"), dense(60, "relu"), dense(1, "sigmoid")]
    return make_spec(layers, "binary_crossentropy", metrics=["accuracy"], **changes)


def summary(model: keras.Sequential) -> list[tuple[str, int | None, str | None]]:
    """(class, units, activation) of each layer."""
    return [
        (
            type(layer).__name__,
            getattr(layer, "units", None),
            layer.activation.__name__ if hasattr(layer, "activation") else None,
        )
        for layer in model.layers
    ]


def test_binary_seed_network_has_its_layers():
    model = build_model(binary_spec())
    assert summary(model) == [
        ("Dense", 60, "relu"),
        ("Dense", 60, "relu"),
        ("Dense", 60, "relu"),
        ("Dense", 1, "sigmoid"),
    ]
    assert model.input_shape == (None, 30)


@pytest.mark.parametrize(
    ("head", "loss", "output_shape"),
    [
        (dense(1, "sigmoid"), "binary_crossentropy", (None, 1)),
        (dense(3, "softmax"), "categorical_crossentropy", (None, 3)),
        (dense(10, "softmax"), "sparse_categorical_crossentropy", (None, 10)),
        (dense(1), "mse", (None, 1)),
        (dense(6), "mean_absolute_error", (None, 6)),
    ],
)
def test_output_shape_and_loss_follow_the_head(head, loss, output_shape):
    model = build_model(make_spec([dense(8, "relu"), head], loss, input_shape=[4]))
    assert model.output_shape == output_shape
    assert model.layers[-1].activation.__name__ == head["activation"]
    assert model.loss == loss


def test_optimizer_name_gives_keras_defaults():
    model = build_model(binary_spec(optimizer="rmsprop"))
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("options", "keras_class", "expected"),
    [
        (
            {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
            keras.optimizers.SGD,
            {"momentum": 0.9, "nesterov": True},
        ),
        ({"name": "rmsprop", "momentum": 0.5}, keras.optimizers.RMSprop, {"momentum": 0.5}),
        (
            {"name": "adamw", "learning_rate": 0.002, "weight_decay": 0.05},
            keras.optimizers.AdamW,
            {"weight_decay": 0.05},
        ),
        ({"name": "adagrad", "learning_rate": 0.3}, keras.optimizers.Adagrad, {}),
    ],
)
def test_optimizer_object_gets_its_parameters(options, keras_class, expected):
    optimizer = build_model(binary_spec(optimizer=options)).optimizer
    assert isinstance(optimizer, keras_class)
    if "learning_rate" in options:
        assert float(optimizer.learning_rate) == pytest.approx(options["learning_rate"])
    for name, value in expected.items():
        assert getattr(optimizer, name) == pytest.approx(value)


def test_kernel_regularizer_and_use_bias_are_applied():
    layers = [
        dense(8, "relu", kernel_regularizer={"l1": 0.001, "l2": 0.01}, use_bias=False),
        dense(1, "sigmoid"),
    ]
    model = build_model(make_spec(layers, "binary_crossentropy"))
    hidden, head = model.layers
    assert isinstance(hidden.kernel_regularizer, keras.regularizers.L1L2)
    assert hidden.kernel_regularizer.get_config() == pytest.approx({"l1": 0.001, "l2": 0.01})
    assert hidden.bias is None
    assert head.kernel_regularizer is None
    assert head.bias is not None


def test_dropout_batch_normalization_and_flatten_are_built():
    layers = [
        {"type": "flatten"},
        {"type": "batch_normalization", "momentum": 0.9, "epsilon": 0.01},
        dense(32, "relu"),
        {"type": "dropout", "rate": 0.25},
        dense(10, "softmax"),
    ]
    model = build_model(make_spec(layers, "categorical_crossentropy", input_shape=[8, 8]))
    flatten, norm, hidden, dropout, head = model.layers
    assert isinstance(flatten, keras.layers.Flatten)
    assert flatten.output.shape == (None, 64)
    assert isinstance(norm, keras.layers.BatchNormalization)
    assert (norm.momentum, norm.epsilon) == pytest.approx((0.9, 0.01))
    assert isinstance(dropout, keras.layers.Dropout)
    assert dropout.rate == pytest.approx(0.25)
    assert summary(model)[2::2] == [("Dense", 32, "relu"), ("Dense", 10, "softmax")]
    assert model.input_shape == (None, 8, 8)
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_normalization_is_built_in_float32_and_adapted_on_the_rows_given(precision: str) -> None:
    import numpy as np

    spec = ModelSpec.model_validate(
        {
            "input_shape": [4, 3],
            "layers": [{"type": "flatten"}, {"type": "normalization"}, dense(1)],
            "compile": {"loss": "mse"},
            "fit": {"epochs": 1},
            "precision": precision,
        }
    )
    model = build_model(spec)
    norm = model.layers[1]
    assert isinstance(norm, keras.layers.Normalization)
    assert norm.axis == (-1,) and not norm.invert
    # Raw features keep their precision whatever the hidden layers compute in.
    assert norm.dtype_policy.name == "float32"
    x = np.random.default_rng(0).normal(loc=50, scale=[[1, 10, 100]] * 4, size=(20, 4, 3))
    adapt(model, x.astype("float32"))
    flat = x.reshape(20, 12)
    np.testing.assert_allclose(norm.adapt_mean, flat.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.adapt_variance, flat.var(axis=0), rtol=1e-4)


def test_model_is_compiled_with_the_spec_metrics_and_predicts():
    import numpy as np

    model = build_model(binary_spec())
    assert model.compiled
    assert model.get_compile_config()["metrics"] == ["accuracy"]
    predictions = model.predict(np.zeros((2, 30), dtype="float32"), verbose=0)
    assert predictions.shape == (2, 1)
    assert ((predictions >= 0) & (predictions <= 1)).all()
