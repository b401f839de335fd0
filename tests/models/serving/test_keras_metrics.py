"""The numpy losses and metrics against Keras' own, on the shapes our heads
give: every loss the spec allows per row, every metric over several chunks."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from models.serving.keras_metrics import LOSSES, accumulator_for
from models.training.class_labels import LabelEncoding

ROWS = 150
rng = np.random.default_rng(3)
# Outputs as each head gives them, and labels as training encodes them.
SIGMOID = rng.uniform(size=(ROWS, 1)).astype(np.float32)
SIGMOID[:3] = [[0.0], [1.0], [0.5]]  # clipped by crossentropy; 0.5 is not above the threshold
BINARY = rng.integers(0, 2, size=(ROWS, 1)).astype(np.float32)
SOFTMAX = rng.dirichlet(np.ones(3), size=ROWS).astype(np.float32)
INDICES = rng.integers(0, 3, size=ROWS).astype(np.int32)
ONE_HOT = np.eye(3, dtype=np.float32)[INDICES]
LINEAR = rng.normal(size=(ROWS, 2)).astype(np.float32) * 3
TARGETS = (rng.normal(size=(ROWS, 2)) * 3).astype(np.float32)
TARGETS[0, 0] = 0.0  # a zero target: MAPE divides by epsilon

CASES = {
    "binary": (BINARY, SIGMOID),
    "one_hot": (ONE_HOT, SOFTMAX),
    "indices": (INDICES, SOFTMAX),
    "regression": (TARGETS, LINEAR),
    "regression_1": (TARGETS[:, :1], LINEAR[:, :1]),
}
LOSS_CASES = [
    ("binary_crossentropy", "binary"), ("mse", "binary"), ("mean_absolute_error", "binary"),
    ("huber", "binary"), ("hinge", "binary"),
    ("categorical_crossentropy", "one_hot"), ("sparse_categorical_crossentropy", "indices"),
    ("mean_squared_error", "one_hot"), ("kl_divergence", "one_hot"),
    ("mse", "regression"), ("mae", "regression"), ("huber", "regression"),
    ("mean_squared_logarithmic_error", "regression"), ("log_cosh", "regression"),
    ("mean_absolute_percentage_error", "regression"), ("mse", "regression_1"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "case"), LOSS_CASES)
def test_each_loss_per_row_is_keras(name: str, case: str) -> None:
    y_true, y_pred = CASES[case]
    expected = keras.ops.convert_to_numpy(keras.losses.get(name)(y_true, y_pred))
    np.testing.assert_allclose(LOSSES[name](y_true, y_pred), expected, rtol=1e-5, atol=1e-6)


ENCODINGS = {
    "binary": LabelEncoding("binary", [0, 1], one_hot=False),
    "one_hot": LabelEncoding("categorical", ["a", "b", "c"], one_hot=True),
    "indices": LabelEncoding("categorical", ["a", "b", "c"], one_hot=False),
    "regression": LabelEncoding("regression", [], one_hot=False),
    "regression_1": LabelEncoding("regression", [], one_hot=False),
}


def keras_metric(name: str, case: str) -> Any:
    """The metric Keras compiles for `name` (its "accuracy" picks by shapes)."""
    if name != "accuracy":
        metric = keras.metrics.get(name)
        return (
            metric
            if isinstance(metric, keras.metrics.Metric)
            else (keras.metrics.MeanMetricWrapper(metric))
        )
    kinds = {"binary": keras.metrics.BinaryAccuracy, "one_hot": keras.metrics.CategoricalAccuracy,
             "indices": keras.metrics.SparseCategoricalAccuracy}  # fmt: skip
    return kinds[case]()


METRIC_CASES = [
    ("accuracy", "binary"), ("binary_accuracy", "binary"), ("auc", "binary"),
    ("precision", "binary"), ("recall", "binary"), ("mse", "binary"),
    ("accuracy", "one_hot"), ("categorical_accuracy", "one_hot"), ("accuracy", "indices"),
    ("mae", "one_hot"), ("mse", "regression"), ("mean_absolute_error", "regression"),
    ("root_mean_squared_error", "regression"), ("mean_absolute_percentage_error", "regression"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "case"), METRIC_CASES)
def test_each_metric_over_chunks_is_keras(name: str, case: str) -> None:
    y_true, y_pred = CASES[case]
    ours, theirs = accumulator_for(name, ENCODINGS[case]), keras_metric(name, case)
    for start in range(0, ROWS, 64):  # chunks of unequal size
        ours.update(y_true[start : start + 64], y_pred[start : start + 64])
    for start in range(0, ROWS, 32):  # Keras' batches
        theirs.update_state(y_true[start : start + 32], y_pred[start : start + 32])
    expected = float(keras.ops.convert_to_numpy(theirs.result()))
    assert ours.result() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_categorical_accuracy_of_indices_is_keras_batch_by_batch() -> None:
    """Keras' categorical_accuracy on labels given as indices compares each row
    with the place of its batch's largest label: reproduced batch by batch."""
    ours = accumulator_for("categorical_accuracy", ENCODINGS["indices"])
    theirs = keras.metrics.CategoricalAccuracy()
    for start in range(0, ROWS, 64):
        ours.update(INDICES[start : start + 64], SOFTMAX[start : start + 64])
    for start in range(0, ROWS, 32):
        theirs.update_state(INDICES[start : start + 32], SOFTMAX[start : start + 32])
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6)
