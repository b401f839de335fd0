"""The numpy forward pass equals Keras (load_model + predict) for every
activation and every layer the spec allows, heads included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.serving.forward import ACTIVATIONS, ForwardPass, UnsupportedLayer  # noqa: E402
from models.training.builder import adapt, build_model  # noqa: E402
from models.training.spec import Activation, ModelSpec  # noqa: E402

GENERATOR = np.random.default_rng(9)


def trained_then_reloaded(spec: dict[str, Any], tmp_path: Path) -> Any:
    import keras

    keras.utils.set_random_seed(3)
    model = build_model(ModelSpec.model_validate(spec))
    x = GENERATOR.normal(size=(64, *spec["input_shape"])).astype("float32")
    head = spec["layers"][-1]
    if head.get("activation") == "softmax":
        y = np.eye(head["units"], dtype="float32")[GENERATOR.integers(0, head["units"], 64)]
    else:
        y = GENERATOR.uniform(size=(64, head["units"])).astype("float32")
    # Fit a little so batch normalization's moving statistics are not the identity.
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True)


def spec_with(hidden: list[dict[str, Any]], head: dict[str, Any], loss: str,
              input_shape: list[int] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "input_shape": input_shape or [6],
        "layers": [*hidden, head],
        "compile": {"loss": loss, "optimizer": "adam"},
        "fit": {"epochs": 1},
    }


@pytest.mark.parametrize("activation", list(get_args(Activation)))
def test_every_hidden_activation_matches_keras(activation: str, tmp_path: Path) -> None:
    assert activation in ACTIVATIONS
    spec = spec_with(
        [{"type": "dense", "units": 12, "activation": activation}],
        {"type": "dense", "units": 2},
        "mse",
    )
    assert_matches_keras(trained_then_reloaded(spec, tmp_path), spec)


HIDDEN = [
    {"type": "dense", "units": 16, "activation": "relu", "kernel_regularizer": {"l2": 0.01}},
    {"type": "dropout", "rate": 0.5},
    {"type": "batch_normalization", "momentum": 0.5},
    {"type": "dense", "units": 8, "activation": "tanh", "use_bias": False},
]


@pytest.mark.parametrize(
    ("head", "loss"),
    [
        ({"type": "dense", "units": 1, "activation": "sigmoid"}, "binary_crossentropy"),
        ({"type": "dense", "units": 4, "activation": "softmax"}, "categorical_crossentropy"),
        ({"type": "dense", "units": 3}, "mse"),
    ],
)
def test_every_layer_and_head_matches_keras(
    head: dict[str, Any], loss: str, tmp_path: Path
) -> None:
    spec = spec_with(HIDDEN, head, loss)
    assert_matches_keras(trained_then_reloaded(spec, tmp_path), spec)


def test_images_through_flatten_match_keras(tmp_path: Path) -> None:
    spec = spec_with(
        [{"type": "flatten"}, {"type": "dense", "units": 32, "activation": "relu"}],
        {"type": "dense", "units": 10, "activation": "softmax"},
        "categorical_crossentropy",
        input_shape=[8, 8],
    )
    assert_matches_keras(trained_then_reloaded(spec, tmp_path), spec)


RAW_SCALE = np.float32([1, 10, 100, 0.1, 1000, 5])
RAW_OFFSET = np.float32([0, 50, -300, 2, 1e4, 0])


@pytest.mark.parametrize(
    ("layers", "input_shape"),
    [
        ([{"type": "normalization"}, *HIDDEN], [6]),
        ([{"type": "normalization"}, {"type": "flatten"}, *HIDDEN], [4, 6]),
        ([{"type": "flatten"}, {"type": "normalization"}, *HIDDEN], [4, 6]),
    ],
)
def test_normalization_matches_keras(
    layers: list[dict[str, Any]], input_shape: list[int], tmp_path: Path
) -> None:
    import keras

    spec = spec_with(layers, {"type": "dense", "units": 3}, "mse", input_shape=input_shape)
    keras.utils.set_random_seed(3)
    model = build_model(ModelSpec.model_validate(spec))
    # Raw features: far from zero, on scales apart, one of them constant
    # (Keras then divides by epsilon, not by a zero deviation).
    x = GENERATOR.normal(size=(64, *input_shape)).astype("float32") * RAW_SCALE + RAW_OFFSET
    x[..., 5] = 7
    adapt(model, x)
    model.fit(x, GENERATOR.uniform(size=(64, 3)), epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert_matches_keras(loaded, spec, x)
    assert_matches_keras(loaded, spec)  # and on inputs far from the adapted rows


def test_an_inverse_normalization_is_refused() -> None:
    import keras

    norm = keras.layers.Normalization(invert=True)
    model = keras.Sequential([keras.Input((4,)), norm, keras.layers.Dense(2)])
    norm.adapt(np.ones((3, 4), dtype="float32"))
    with pytest.raises(UnsupportedLayer):
        ForwardPass.from_keras(model)


def test_an_unknown_layer_is_refused() -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.GaussianNoise(0.1)])
    with pytest.raises(UnsupportedLayer):
        ForwardPass.from_keras(model)


def assert_matches_keras(model: Any, spec: dict[str, Any], x: Any = None) -> None:
    if x is None:
        x = (GENERATOR.normal(size=(200, *spec["input_shape"])) * 3).astype("float32")
    expected = model.predict(x, verbose=0)
    actual = ForwardPass.from_keras(model)(x)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
