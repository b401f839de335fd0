"""The model spec: one test per rule, each checking the 422, where it points and what it says."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from typing import Any

import pytest

from models.errors import ValidationFailed
from models.training.spec import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_UNITS,
    ModelSpec,
    count_parameters,
)
from models.validation import validate
from service.errors import http_status

# --- the seed's four programs, as specs -------------------------------------------------


def dense(units: int, activation: str | None = None, **extra: Any) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": "dense", "units": units, **extra}
    if activation is not None:
        layer["activation"] = activation
    return layer


def binary_spec() -> dict[str, Any]:
    """The sonar classifier: 3 x Dense(60, relu) + Dense(1, sigmoid)."""
    return {
        "input_shape": [30],
        "layers": [dense(60, "relu"), dense(60, "relu"), dense(60, "relu"), dense(1, "sigmoid")],
        "compile": {"loss": "binary_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
        "fit": {"epochs": 30, "batch_size": 10},
        "seed": 3,
    }


def iris_spec() -> dict[str, Any]:
    return {
        "input_shape": [4],
        "layers": [dense(16, "relu"), dense(3, "softmax")],
        "compile": {
            "loss": "categorical_crossentropy",
            "optimizer": "adam",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 100, "batch_size": 5},
    }


def regression_spec() -> dict[str, Any]:
    return {
        "input_shape": [10],
        "layers": [dense(30, "relu"), dense(6, "relu"), dense(1)],
        "compile": {"loss": "mse", "optimizer": "adam"},
        "fit": {"epochs": 200, "batch_size": 10},
    }


def digits_spec() -> dict[str, Any]:
    return {
        "input_shape": [8, 8],
        "layers": [{"type": "flatten"}, dense(512, "relu"), dense(10, "softmax")],
        "compile": {
            "loss": "categorical_crossentropy",
            "optimizer": "rmsprop",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 5, "batch_size": 128},
    }


def refused(data: dict[str, Any], loc: list[str | int], *words: str) -> ValidationFailed:
    """Assert `data` is a 422 whose first problem is at `loc` and mentions every word."""
    with pytest.raises(ValidationFailed) as caught:
        validate(ModelSpec, data, ("spec",))
    error = caught.value
    assert http_status(error) == 422
    assert error.code == "validation_failed"
    first = error.details[0]
    assert first["loc"] == loc, error.details
    for word in words:
        assert word in first["msg"], first["msg"]
    assert "Received" in first["msg"]
    # The top-level message leads with the same problem.
    assert ".".join(str(part) for part in loc) in error.message
    return error


def accepted(data: dict[str, Any]) -> ModelSpec:
    return validate(ModelSpec, data, ("spec",))


# --- the seed's programs validate --------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "task", "outputs"),
    [
        (binary_spec, "binary", 1),
        (iris_spec, "categorical", 3),
        (regression_spec, "regression", 1),
        (digits_spec, "categorical", 10),
    ],
)
def test_seed_programs_validate(make, task, outputs):
    spec = accepted(make())
    assert spec.task == task
    assert spec.outputs == outputs


# --- layer types: nothing that names or runs code ----------------------------------------


def test_unknown_layer_type_is_refused():
    data = binary_spec()
    data["layers"][1] = {"type": "conv2d", "filters": 8}
    refused(data, ["spec", "layers", 1, "type"], "conv2d", "dense")


def test_missing_layer_type_is_refused():
    data = binary_spec()
    del data["layers"][2]["type"]
    refused(data, ["spec", "layers", 2, "type"], "type")


@pytest.mark.parametrize("kind", ["lambda", "Lambda", "custom", "model"])
def test_lambda_and_other_code_layers_are_refused_as_code(kind):
    data = binary_spec()
    data["layers"][1] = {"type": kind, "function": "lambda x: x"}
    refused(data, ["spec", "layers", 1, "type"], "user code", repr(kind))


@pytest.mark.parametrize(
    "kind",
    ["keras.layers.Lambda", "keras.layers:Dense", "/tmp/evil.py", "https://evil.example/layer"],
)
def test_module_path_as_layer_type_is_refused(kind):
    data = binary_spec()
    data["layers"][0]["type"] = kind
    refused(data, ["spec", "layers", 0, "type"], "user code", repr(kind))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("class_name", "Lambda"),
        ("module", "keras.layers"),
        ("config", {"function": "os.system"}),
        ("registered_name", "Custom>Evil"),
        ("function", "lambda x: __import__('os').system('id')"),
    ],
)
def test_extra_keys_on_a_layer_are_refused(key, value):
    data = binary_spec()
    data["layers"][2][key] = value
    refused(data, ["spec", "layers", 2, key], "Extra inputs are not permitted")


# --- names of activations, losses, optimizers, metrics: allow-lists only ------------------

CODE_NAMES = [
    "keras.activations.relu",
    "my_module:my_function",
    "/tmp/evil.py",
    "..\\evil.py",
    "https://evil.example/x.py",
]


@pytest.mark.parametrize("name", CODE_NAMES)
def test_code_name_as_activation_is_refused(name):
    data = binary_spec()
    data["layers"][0]["activation"] = name
    refused(data, ["spec", "layers", 0, "activation"], "'relu'")


@pytest.mark.parametrize("name", CODE_NAMES)
def test_code_name_as_loss_is_refused(name):
    data = binary_spec()
    data["compile"]["loss"] = name
    refused(data, ["spec", "compile", "loss"], "'binary_crossentropy'")


@pytest.mark.parametrize("name", CODE_NAMES)
def test_code_name_as_optimizer_is_refused(name):
    data = binary_spec()
    data["compile"]["optimizer"] = name
    error = refused(data, ["spec", "compile", "optimizer"], "'adam'", "'sgd'")
    assert len(error.details) == 1  # a string is only checked as a name, not as an object


@pytest.mark.parametrize("name", CODE_NAMES)
def test_code_name_in_optimizer_object_is_refused(name):
    data = binary_spec()
    data["compile"]["optimizer"] = {"name": name, "learning_rate": 0.01}
    refused(data, ["spec", "compile", "optimizer", "name"], "'adam'")


@pytest.mark.parametrize("name", CODE_NAMES)
def test_code_name_as_metric_is_refused(name):
    data = binary_spec()
    data["compile"]["metrics"] = ["accuracy", name]
    refused(data, ["spec", "compile", "metrics", 1], "'accuracy'")


# --- bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "word"),
    [(0, "greater than or equal to 1"), (-5, "greater than or equal to 1"),
     (MAX_UNITS + 1, str(MAX_UNITS))],
)  # fmt: skip
def test_units_out_of_bounds_are_refused(units, word):
    data = binary_spec()
    data["layers"][1]["units"] = units
    refused(data, ["spec", "layers", 1, "units"], word)


def test_too_many_layers_are_refused():
    data = binary_spec()
    data["layers"] = [dense(4, "relu") for _ in range(MAX_LAYERS)] + [dense(1, "sigmoid")]
    refused(data, ["spec", "layers"], f"at most {MAX_LAYERS}")


def test_too_many_parameters_are_refused():
    data = binary_spec()
    data["input_shape"] = [4096]
    data["layers"] = [dense(16_384, "relu") for _ in range(3)] + [dense(1, "sigmoid")]
    refused(data, ["spec", "layers"], "parameters", f"{MAX_PARAMS:,}")


@pytest.mark.parametrize(("epochs", "word"), [(0, "1"), (MAX_EPOCHS + 1, str(MAX_EPOCHS))])
def test_epochs_out_of_bounds_are_refused(epochs, word):
    data = binary_spec()
    data["fit"]["epochs"] = epochs
    refused(data, ["spec", "fit", "epochs"], word)


@pytest.mark.parametrize(
    ("batch_size", "word"), [(0, "1"), (MAX_BATCH_SIZE + 1, str(MAX_BATCH_SIZE))]
)
def test_batch_size_out_of_bounds_is_refused(batch_size, word):
    data = binary_spec()
    data["fit"]["batch_size"] = batch_size
    refused(data, ["spec", "fit", "batch_size"], word)


@pytest.mark.parametrize(("split", "word"), [(1.0, "less than 1"), (-0.1, "greater than")])
def test_validation_split_out_of_bounds_is_refused(split, word):
    data = binary_spec()
    data["fit"]["validation_split"] = split
    refused(data, ["spec", "fit", "validation_split"], word)


def test_dropout_rate_of_one_is_refused():
    data = binary_spec()
    data["layers"].insert(1, {"type": "dropout", "rate": 1})
    refused(data, ["spec", "layers", 1, "rate"], "less than 1")


# --- input shape --------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "word"), [([], "at least 1"), ([2, 2, 2, 2, 2], "at most 4")])
def test_input_shape_rank_out_of_bounds_is_refused(shape, word):
    data = binary_spec()
    data["input_shape"] = shape
    refused(data, ["spec", "input_shape"], word)


def test_input_shape_zero_dimension_is_refused():
    data = digits_spec()
    data["input_shape"] = [8, 0]
    refused(data, ["spec", "input_shape", 1], "greater than or equal to 1")


def test_rank_above_one_needs_flatten_before_the_first_dense():
    data = digits_spec()
    data["input_shape"] = [28, 28]
    data["layers"] = [{"type": "dropout", "rate": 0.1}, dense(512, "relu"), dense(10, "softmax")]
    refused(data, ["spec", "layers", 1], "flatten", "rank 2", "[28, 28]")


def test_rank_above_one_with_flatten_is_accepted():
    data = digits_spec()
    data["input_shape"] = [28, 28]
    spec = accepted(data)
    assert count_parameters(spec) == 28 * 28 * 512 + 512 + 512 * 10 + 10


# --- normalization is adapted on the raw inputs, so it comes first ----------------------


def test_normalization_first_or_after_a_first_flatten_is_accepted():
    data = regression_spec()
    data["layers"].insert(0, {"type": "normalization"})
    assert count_parameters(accepted(data)) == 2 * 10 + 1 + 10 * 30 + 30 + 30 * 6 + 6 + 6 + 1
    images = digits_spec()
    images["layers"].insert(1, {"type": "normalization"})
    assert count_parameters(accepted(images)) == 2 * 64 + 1 + 64 * 512 + 512 + 512 * 10 + 10


@pytest.mark.parametrize(
    ("layers", "index", "after"),
    [
        ([dense(30, "relu"), {"type": "normalization"}, dense(1)], 1, "'dense'"),
        ([{"type": "dropout", "rate": 0.1}, {"type": "normalization"}, dense(1)], 1, "'dropout'"),
        ([{"type": "flatten"}, dense(4), {"type": "normalization"}, dense(1)], 2, "'dense'"),
    ],
)
def test_normalization_anywhere_else_is_refused(layers, index, after):
    data = regression_spec()
    data["layers"] = layers
    refused(data, ["spec", "layers", index, "type"], "first layer", "raw training inputs", after)


@pytest.mark.parametrize("first", [[], [{"type": "flatten"}]])
def test_a_second_normalization_is_refused(first):
    data = regression_spec()
    data["layers"] = [*first, {"type": "normalization"}, {"type": "normalization"}, dense(1)]
    index = len(first) + 1
    refused(
        data, ["spec", "layers", index, "type"], "Only one 'normalization'", f"layer {index - 1}"
    )


def test_extra_keys_on_normalization_are_refused():
    data = regression_spec()
    data["layers"].insert(0, {"type": "normalization", "invert": True})
    refused(data, ["spec", "layers", 0, "invert"], "Extra inputs")


# --- the head decides the task ------------------------------------------------------------


def test_head_must_be_dense():
    data = binary_spec()
    data["layers"].append({"type": "dropout", "rate": 0.5})
    refused(data, ["spec", "layers", 4, "type"], "head", "'dense'", "'dropout'")


def test_sigmoid_head_needs_one_unit():
    data = binary_spec()
    data["layers"][3]["units"] = 2
    refused(data, ["spec", "layers", 3, "units"], "sigmoid", "exactly 1 unit", "units=2")


def test_softmax_head_needs_two_units_or_more():
    data = iris_spec()
    data["layers"][1]["units"] = 1
    refused(data, ["spec", "layers", 1, "units"], "softmax", "at least 2 units", "units=1")


def test_relu_head_is_refused():
    data = regression_spec()
    data["layers"][2]["activation"] = "relu"
    refused(data, ["spec", "layers", 2, "activation"], "sigmoid", "softmax", "linear", "'relu'")


# --- loss and metrics fit the head --------------------------------------------------------


def test_categorical_crossentropy_on_sigmoid_head_is_refused():
    data = binary_spec()
    data["compile"]["loss"] = "categorical_crossentropy"
    refused(data, ["spec", "compile", "loss"], "'categorical_crossentropy'", "sigmoid head")


def test_binary_crossentropy_on_linear_head_is_refused():
    data = regression_spec()
    data["compile"]["loss"] = "binary_crossentropy"
    refused(data, ["spec", "compile", "loss"], "'binary_crossentropy'", "linear head")


def test_mse_on_sigmoid_head_is_accepted():
    data = binary_spec()
    data["compile"]["loss"] = "mean_squared_error"
    assert accepted(data).task == "binary"


def test_accuracy_on_regression_head_is_refused():
    data = regression_spec()
    data["compile"]["metrics"] = ["mae", "accuracy"]
    refused(data, ["spec", "compile", "metrics", 1], "'accuracy'", "linear head")


# --- optimizer ----------------------------------------------------------------------------


def test_optimizer_object_is_accepted():
    data = binary_spec()
    data["compile"]["optimizer"] = {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    options = accepted(data).compile.optimizer_options
    assert (options.name, options.learning_rate, options.momentum) == ("sgd", 0.01, 0.9)


def test_momentum_on_adam_is_refused():
    data = binary_spec()
    data["compile"]["optimizer"] = {"name": "adam", "momentum": 0.9}
    error = refused(data, ["spec", "compile", "optimizer", "momentum"], "sgd", "name='adam'")
    assert len(error.details) == 1  # an object is only checked as an object


# --- fit, seed, device --------------------------------------------------------------------


def test_early_stopping_on_val_loss_needs_validation_split():
    data = binary_spec()
    data["fit"]["early_stopping"] = {"monitor": "val_loss", "patience": 5}
    refused(data, ["spec", "fit", "early_stopping", "monitor"], "'val_loss'", "validation_split")


def test_negative_seed_is_refused():
    data = binary_spec()
    data["seed"] = -1
    refused(data, ["spec", "seed"], "greater than or equal to 0")


def test_unknown_device_is_refused():
    data = binary_spec()
    data["device"] = "tpu"
    refused(data, ["spec", "device"], "'cpu'", "'gpu'", "'tpu'")


# --- parameter count agrees with Keras ----------------------------------------------------


def _with_extras() -> dict[str, Any]:
    data = digits_spec()
    data["input_shape"] = [4, 6, 2]
    data["layers"] = [
        {"type": "flatten"},
        {"type": "batch_normalization"},
        dense(20, "relu", use_bias=False, kernel_regularizer={"l2": 0.01}),
        {"type": "dropout", "rate": 0.3},
        {"type": "batch_normalization"},
        dense(7, "softmax"),
    ]
    data["compile"]["optimizer"] = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5}
    return data


def _normalized_sequences() -> dict[str, Any]:
    data = regression_spec()
    data["input_shape"] = [5, 3]
    data["layers"] = [{"type": "normalization"}, {"type": "flatten"}, dense(4, "relu"), dense(1)]
    return data


def _flattened_then_normalized() -> dict[str, Any]:
    data = digits_spec()
    data["layers"].insert(1, {"type": "normalization"})
    return data


@pytest.mark.parametrize(
    "make",
    [binary_spec, iris_spec, regression_spec, digits_spec, _with_extras, _normalized_sequences,
     _flattened_then_normalized],
)  # fmt: skip
def test_count_parameters_matches_keras(make):
    from models.training.builder import build_model

    spec = accepted(make())
    assert count_parameters(spec) == build_model(spec).count_params()
