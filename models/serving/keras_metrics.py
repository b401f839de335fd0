"""Keras 3's losses and metrics for the names a spec may compile, in numpy.

Each loss maps (encoded labels, outputs) to one value per row, as the
function of the same name in keras.losses does before its batch mean; a
metric accumulates over chunks of rows and gives Keras' result at the end
(keras.metrics: a mean of per-row values, or confusion counts for precision,
recall and AUC). Computed in float32 as Keras does, summed in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.layers.serving_steps import KERAS_EPSILON
from models.training.class_labels import LabelEncoding

Array = np.ndarray
PerRow = Callable[[Array, Array], Array]

EPSILON = KERAS_EPSILON
HALF = np.float32(0.5)
LOG2 = np.log(np.float32(2))
AUC_THRESHOLDS = 200  # keras.metrics.AUC's default num_thresholds


def _same_rank(y_true: Array, y_pred: Array) -> tuple[Array, Array]:
    """keras.losses.loss.squeeze_or_expand_to_same_rank."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    return y_true.astype(np.float32), y_pred


def binary_crossentropy(y_true: Array, y_pred: Array) -> Array:
    y_true = y_true.astype(np.float32)
    p = np.clip(y_pred, EPSILON, np.float32(1) - EPSILON)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p), axis=-1)


def _class_log_probabilities(y_pred: Array) -> Array:
    # Keras renormalises the outputs before it clips them.
    p = y_pred / np.sum(y_pred, axis=-1, keepdims=True)
    return np.log(np.clip(p, EPSILON, np.float32(1) - EPSILON))


def categorical_crossentropy(y_true: Array, y_pred: Array) -> Array:
    return -np.sum(y_true.astype(np.float32) * _class_log_probabilities(y_pred), axis=-1)


def sparse_categorical_crossentropy(y_true: Array, y_pred: Array) -> Array:
    indices = y_true.reshape(len(y_true)).astype(np.int64)
    return -_class_log_probabilities(y_pred)[np.arange(len(indices)), indices]


def mean_squared_error(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    return np.mean(np.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    ratio = np.abs((y_true - y_pred) / np.maximum(np.abs(y_true), EPSILON))
    return np.float32(100) * np.mean(ratio, axis=-1)


def mean_squared_logarithmic_error(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    first = np.log(np.maximum(y_pred, EPSILON) + np.float32(1))
    second = np.log(np.maximum(y_true, EPSILON) + np.float32(1))
    return np.mean(np.square(first - second), axis=-1)


def huber(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    error = y_pred - y_true
    absolute = np.abs(error)
    # delta = 1
    return np.mean(np.where(absolute <= 1, HALF * np.square(error), absolute - HALF), axis=-1)


def log_cosh(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    x = y_pred - y_true
    return np.mean(x + np.logaddexp(np.float32(0), x * np.float32(-2)) - LOG2, axis=-1)


def hinge(y_true: Array, y_pred: Array) -> Array:
    y_true = y_true.astype(np.float32)
    # Keras maps 0/1 labels to -1/1 when every label of the batch is 0 or 1,
    # which our binary encoding always gives.
    if np.all((y_true == 0) | (y_true == 1)):
        y_true = 2 * y_true - 1
    return np.mean(np.maximum(1 - y_true * y_pred, 0), axis=-1)


def kl_divergence(y_true: Array, y_pred: Array) -> Array:
    y_true = np.clip(y_true.astype(np.float32), EPSILON, 1)
    y_pred = np.clip(y_pred, EPSILON, 1)
    return np.sum(y_true * np.log(y_true / y_pred), axis=-1)


LOSSES: dict[str, PerRow] = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "huber": huber,
    "hinge": hinge,
    "kl_divergence": kl_divergence,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "log_cosh": log_cosh,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
}


def binary_accuracy(y_true: Array, y_pred: Array) -> Array:
    y_true, y_pred = _same_rank(y_true, y_pred)
    return (y_true == (y_pred > HALF)).astype(np.float32).mean(axis=-1)


def categorical_accuracy(y_true: Array, y_pred: Array) -> Array:
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true: Array, y_pred: Array) -> Array:
    indices = y_true.reshape(len(y_true)).astype(np.int64)
    return (indices == np.argmax(y_pred, axis=-1)).astype(np.float32)


KERAS_BATCH = 32  # `evaluate`'s default batch_size


def categorical_accuracy_of_indices(y_true: Array, y_pred: Array) -> Array:
    """What Keras' categorical_accuracy gives for labels given as indices: it
    argmaxes y_true along its last axis, which for indices is the whole
    batch, so each row is compared with the place of the largest label in
    its batch of 32. Meaningless, but what `evaluate` reports; `y_true`
    must start at a batch boundary."""
    labels = y_true.reshape(len(y_true))
    batches = [labels[start : start + KERAS_BATCH] for start in range(0, len(labels), KERAS_BATCH)]
    places = np.repeat([np.argmax(batch) for batch in batches], [len(b) for b in batches])
    return (places == np.argmax(y_pred, axis=-1)).astype(np.float32)


MEAN_METRICS: dict[str, PerRow] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
}


class MeanOfRows:
    """A Keras metric that is the mean of a per-row value (MeanMetricWrapper)."""

    def __init__(self, per_row: PerRow, root: bool = False) -> None:
        self.per_row = per_row
        self.root = root  # RootMeanSquaredError: the root of the mean
        self.total = 0.0
        self.count = 0

    def update(self, y_true: Array, y_pred: Array) -> None:
        self.total += float(np.sum(self.per_row(y_true, y_pred), dtype=np.float64))
        self.count += len(y_true)

    def result(self) -> float:
        mean = self.total / self.count if self.count else 0.0
        return float(np.sqrt(mean)) if self.root else mean


class ConfusionCounts:
    """Precision, recall (threshold 0.5) or ROC AUC (200 thresholds, trapezoids),
    from true/false positive/negative counts at each threshold: Keras counts
    an output above a threshold as positive."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.thresholds = AUC_THRESHOLDS if kind == "auc" else 1
        self.true_positives = np.zeros(self.thresholds, dtype=np.int64)
        self.false_positives = np.zeros(self.thresholds, dtype=np.int64)
        self.positives = 0
        self.negatives = 0

    def update(self, y_true: Array, y_pred: Array) -> None:
        truth = y_true.reshape(-1) != 0
        scores = y_pred.reshape(-1)
        # At how many thresholds (the first that many) each row counts as positive.
        if self.kind == "auc":
            # Keras' bucketing for evenly spaced thresholds, to its float32 rounding.
            scaled = np.clip(scores, 0, 1) * np.float32(AUC_THRESHOLDS - 1)
            positive_at = np.maximum(np.ceil(scaled) - 1, 0).astype(np.int64) + 1
        else:
            positive_at = (scores > HALF).astype(np.int64)
        for counts, rows in ((self.true_positives, truth), (self.false_positives, ~truth)):
            tally = np.bincount(positive_at[rows], minlength=self.thresholds + 1)
            counts += np.cumsum(tally[::-1])[::-1][1:]
        self.positives += int(truth.sum())
        self.negatives += int((~truth).sum())

    def result(self) -> float:
        tp, fp = self.true_positives.astype(np.float64), self.false_positives.astype(np.float64)
        recall = _ratio(tp, np.full_like(tp, self.positives))
        if self.kind == "recall":
            return float(recall[0])
        if self.kind == "precision":
            return float(_ratio(tp, tp + fp)[0])
        fp_rate = _ratio(fp, np.full_like(fp, self.negatives))
        heights = (recall[:-1] + recall[1:]) / 2
        return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * heights))


def _ratio(numerator: Array, denominator: Array) -> Array:
    """keras.ops.divide_no_nan: 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator != 0)  # fmt: skip


Accumulator = MeanOfRows | ConfusionCounts


def accumulator_for(name: str, encoding: LabelEncoding) -> Accumulator:
    """The metric `name` as Keras compiles it for a model with this encoding."""
    if name in ("precision", "recall", "auc"):
        return ConfusionCounts(name)
    if name == "root_mean_squared_error":
        return MeanOfRows(mean_squared_error, root=True)
    if name == "accuracy":
        # Keras picks by the shapes: one output is binary accuracy, labels as
        # indices are sparse categorical accuracy, one-hot labels categorical.
        if encoding.task != "categorical":
            return MeanOfRows(binary_accuracy)
        return MeanOfRows(categorical_accuracy if encoding.one_hot else sparse_categorical_accuracy)
    if name == "categorical_accuracy" and encoding.task == "categorical" and not encoding.one_hot:
        return MeanOfRows(categorical_accuracy_of_indices)
    return MeanOfRows(MEAN_METRICS[name])
