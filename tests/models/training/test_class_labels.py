"""Labels: dataset vs head checks, encoding for Keras, decoding predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from models.datasets import describe_target
from models.errors import SpecDatasetMismatch
from models.training.class_labels import LabelEncoding, check_dataset_fits_spec
from models.training.spec import ModelSpec
from service.errors import http_status


def dense(units: int, activation: str = "linear") -> dict[str, Any]:
    return {"type": "dense", "units": units, "activation": activation}


def make_spec(head: dict[str, Any], loss: str, input_shape: list[int] | None = None) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "input_shape": input_shape or [4],
            "layers": [dense(8, "relu"), head],
            "compile": {"loss": loss},
            "fit": {"epochs": 1},
        }
    )


def binary_spec() -> ModelSpec:
    return make_spec(dense(1, "sigmoid"), "binary_crossentropy")


def softmax_spec(units: int = 3, loss: str = "categorical_crossentropy") -> ModelSpec:
    return make_spec(dense(units, "softmax"), loss)


def regression_spec(outputs: int = 1) -> ModelSpec:
    return make_spec(dense(outputs), "mse")


def record(y: np.ndarray, x_shape: list[int] | None = None) -> dict[str, Any]:
    """The stored dataset record the API passes in (see DatasetStore.save)."""
    return {"id": "d1", "x_shape": x_shape or [4], "target": describe_target(y)}


IRIS_SPECIES = np.array(["setosa", "versicolor", "virginica"])
species = IRIS_SPECIES[load_iris().target]


def mismatch(spec: ModelSpec, dataset: dict[str, Any], loc: list[str | int], *words: str):
    with pytest.raises(SpecDatasetMismatch) as caught:
        check_dataset_fits_spec(spec, dataset)
    error = caught.value
    assert http_status(error) == 422
    assert error.code == "spec_dataset_mismatch"
    assert error.details[0]["loc"] == loc
    for word in words:
        assert word in error.message, error.message
    assert "Received" in error.message


# --- check_dataset_fits_spec --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "y"),
    [
        (binary_spec(), np.array([0, 1] * 10)),
        (binary_spec(), np.array(["rock", "mine"] * 10)),
        (softmax_spec(3), species),
        (softmax_spec(3, "sparse_categorical_crossentropy"), species),
        (softmax_spec(2), np.array(["no", "yes"] * 10)),
        (regression_spec(), np.linspace(0.0, 1.0, 20)),
        (regression_spec(2), np.random.default_rng(0).normal(size=(20, 2))),
    ],
)
def test_fitting_datasets_pass(spec, y):
    check_dataset_fits_spec(spec, record(y))


def test_input_shape_mismatch_names_input_shape():
    dataset = record(species, x_shape=[8, 8])
    mismatch(softmax_spec(3), dataset, ["spec", "input_shape"], "[4]", "[8, 8]", "d1")


def test_binary_head_on_three_classes():
    mismatch(binary_spec(), record(species), ["spec", "layers", 1], "sigmoid", "2 classes")


def test_binary_head_on_numeric_target():
    mismatch(binary_spec(), record(np.linspace(0, 1, 20)), ["spec", "layers", 1], "numeric")


@pytest.mark.parametrize("units", [2, 4])
def test_softmax_units_must_equal_class_count(units):
    mismatch(
        softmax_spec(units),
        record(species),
        ["spec", "layers", 1, "units"],
        f"{units} units",
        "3 classes",
    )


def test_softmax_head_on_numeric_target():
    mismatch(softmax_spec(3), record(np.linspace(0, 1, 20)), ["spec", "layers", 1], "numeric")


def test_string_labels_on_regression_head():
    mismatch(regression_spec(), record(species), ["spec", "layers", 1], "regression", "setosa")


def test_regression_outputs_must_equal_target_columns():
    y = np.random.default_rng(0).normal(size=(20, 3))
    mismatch(regression_spec(2), record(y), ["spec", "layers", 1, "units"], "2 outputs", "3")


# --- LabelEncoding --------------------------------------------------------------------------


def test_iris_species_one_hot_round_trip():
    spec = softmax_spec(3)
    encoding = LabelEncoding.for_spec(spec, species)
    assert encoding.task == "categorical"
    assert encoding.classes == ["setosa", "versicolor", "virginica"]
    assert encoding.one_hot

    encoded = encoding.encode(species)
    assert encoded.shape == (150, 3)
    assert encoded.dtype == np.float32
    assert (encoded.sum(axis=1) == 1).all()
    assert encoded[0].tolist() == [1, 0, 0]  # sample 0 is a setosa
    assert encoded[-1].tolist() == [0, 0, 1]  # sample 149 is a virginica
    assert encoding.decode(encoded) == species.tolist()


def test_sparse_loss_encodes_class_indices():
    spec = softmax_spec(3, "sparse_categorical_crossentropy")
    encoding = LabelEncoding.for_spec(spec, species)
    assert not encoding.one_hot
    encoded = encoding.encode(np.array(["virginica", "setosa", "versicolor"]))
    assert encoded.tolist() == [2, 0, 1]
    assert encoded.dtype == np.int32
    probabilities = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    assert encoding.decode(probabilities) == ["virginica", "setosa", "versicolor"]


def test_numeric_classes_decode_to_python_numbers():
    y = np.array([3, 7, 5, 3, 7, 5])
    encoding = LabelEncoding.for_spec(softmax_spec(3), y)
    assert encoding.classes == [3, 5, 7]
    assert all(type(label) is int for label in encoding.classes)  # JSON-serializable
    assert encoding.decode(encoding.encode(y)) == y.tolist()


def test_binary_labels_encode_to_a_column_and_decode_at_threshold_half():
    y = np.array(["rock", "mine", "mine", "rock"])
    encoding = LabelEncoding.for_spec(binary_spec(), y)
    assert encoding.classes == ["mine", "rock"]
    encoded = encoding.encode(y)
    assert encoded.shape == (4, 1)
    assert encoded[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    outputs = np.array([[0.0], [0.49], [0.5], [0.51], [1.0]])
    assert encoding.decode(outputs) == ["mine", "mine", "rock", "rock", "rock"]
    assert encoding.decode(encoded) == y.tolist()


@pytest.mark.parametrize(
    ("y", "shape"),
    [(np.array([1.5, -2.0, 3.25]), (3, 1)), (np.arange(6, dtype=np.int64).reshape(3, 2), (3, 2))],
)
def test_regression_targets_pass_through_as_float32(y, shape):
    encoding = LabelEncoding.for_spec(regression_spec(shape[1]), y)
    assert encoding.task == "regression"
    assert encoding.classes == []
    encoded = encoding.encode(y)
    assert encoded.dtype == np.float32
    assert encoded.shape == shape
    np.testing.assert_array_equal(encoded.ravel(), y.ravel().astype(np.float32))
    assert encoding.decode(encoded) is None
