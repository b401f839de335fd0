"""Evaluating a published version on a stored, labelled dataset, as Keras'
`model.evaluate` would: the compiled loss (plus the layers' regularization
penalties, as Keras adds them) and each compiled metric, over every row.

The outputs come from the version's serving pass (`LoadedModel.predict`), a
chunk of rows at a time, and the loss and metrics are reduced here in numpy:
Keras is never called from a request thread. The labels are encoded as
training encoded them (models.training.class_labels). Each definition follows
Keras 3's (keras.losses, keras.metrics) in float32, crossentropy's clipping at
epsilon 1e-7 included; the sums are kept in float64 across chunks, so the
answer does not depend on the chunk size. The per-sample metrics live in
models.serving.keras_metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.datasets import Dataset
from models.errors import SpecDatasetMismatch, ValidationFailed, problem, quoted
from models.serving.keras_metrics import KERAS_BATCH, LOSSES, accumulator_for
from models.serving.loaded_model import LoadedModel
from models.training.class_labels import LabelEncoding


def evaluate(
    loaded: LoadedModel, dataset: Dataset, dataset_id: str, chunk_rows: int
) -> dict[str, Any]:
    """`{"metrics": {"loss": ..., <metric>: ...}, "rows": n}` of `loaded` on
    `dataset`; a 422 at ["dataset"] when its labels do not fit the model."""
    check_labels(loaded, dataset.y, dataset_id)
    metadata = loaded.metadata
    # As published: the spec was checked when its job was submitted.
    compiled = metadata["spec"]["compile"]
    encoding = LabelEncoding.for_model(metadata["task"], compiled["loss"], metadata["classes"])
    loss = LOSSES[compiled["loss"]]
    metrics = {name: accumulator_for(name, encoding) for name in compiled.get("metrics", [])}
    loss_sum = 0.0
    rows = len(dataset.x)
    # Chunks start at a batch of Keras' `evaluate`: one metric depends on its batches.
    chunk_rows = -(-chunk_rows // KERAS_BATCH) * KERAS_BATCH
    for start in range(0, rows, chunk_rows):
        outputs = loaded.predict(dataset.x[start : start + chunk_rows])
        y_true = encoding.encode(dataset.y[start : start + chunk_rows])
        loss_sum += float(np.sum(loss(y_true, outputs), dtype=np.float64))
        for metric in metrics.values():
            metric.update(y_true, outputs)
    results = {"loss": loss_sum / rows + loaded.regularization}
    results.update({name: metric.result() for name, metric in metrics.items()})
    return {"metrics": results, "rows": rows}


def check_labels(loaded: LoadedModel, y: np.ndarray, dataset_id: str) -> None:
    """A 422 at ["dataset"] when `y` is not labels `loaded` was trained on:
    no labels, a class it never saw, text for a regression, the wrong width."""
    model = f"model {loaded.name!r} version {loaded.version}"
    if y.size == 0:
        _refuse(ValidationFailed, f"Dataset {dataset_id} has no labels; evaluating {model} "
                "needs one per row", dataset_id)  # fmt: skip
    task = loaded.metadata["task"]
    outputs = int(loaded.metadata["outputs"])
    if task == "regression":
        if y.dtype.kind in "US":
            _refuse(SpecDatasetMismatch, f"Dataset {dataset_id} has text labels, but {model} "
                    "is a regression and takes numbers", dataset_id)  # fmt: skip
        width = 1 if y.ndim == 1 else y.shape[1]
        if width != outputs:
            _refuse(SpecDatasetMismatch, f"Dataset {dataset_id} has {width} target values "
                    f"per row, but {model} has {outputs} outputs", dataset_id)  # fmt: skip
        return
    classes = list(loaded.metadata["classes"])
    if y.ndim != 1:
        _refuse(SpecDatasetMismatch, f"Dataset {dataset_id} has {y.shape[1]} target values per "
                f"row, but {model} takes one class label, one of {quoted(classes)}",
                dataset_id)  # fmt: skip
    unseen = _unseen(y, classes)
    if unseen:
        _refuse(SpecDatasetMismatch, f"Dataset {dataset_id} has labels {model} never saw: "
                f"{quoted(unseen)}; its classes are {quoted(classes, 50)}", dataset_id)  # fmt: skip


def _unseen(y: np.ndarray, classes: list[Any]) -> list[Any]:
    """The distinct labels of `y` that are not among `classes` (a few of them)."""
    text_labels, text_classes = y.dtype.kind in "US", isinstance(classes[0], str)
    if text_labels != text_classes:  # numbers are never a text class, nor text a number
        unseen = np.unique(y[:100_000])
    else:
        unseen = np.unique(y[~np.isin(y, np.asarray(classes))])
    return [value.item() for value in unseen[:10]]


def _refuse(kind: type[ValidationFailed], what: str, dataset_id: str) -> None:
    message = f"{what}. Received: dataset={dataset_id!r}"
    raise kind(message, details=[problem(["dataset"], message)])
