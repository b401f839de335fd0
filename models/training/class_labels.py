"""Labels: checking a dataset's target against the spec's head, encoding it
for Keras (the seed's `to_categorical`), and decoding predictions back to the
user's classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import SpecDatasetMismatch, problem
from models.records import DatasetRecord
from models.training.spec import ModelSpec, Task


def check_dataset_fits_spec(spec: ModelSpec, record: DatasetRecord) -> None:
    """Raise SpecDatasetMismatch when the stored dataset cannot train `spec`."""
    if list(record["x_shape"]) != list(spec.input_shape):
        _mismatch(
            ["spec", "input_shape"],
            f"input_shape {spec.input_shape} does not match the dataset's per-sample shape "
            f"{record['x_shape']} (dataset {record['id']}). Received: {spec.input_shape}",
        )
    target = record["target"]
    classes = target.get("classes") or []
    head = f"layers[{len(spec.layers) - 1}]"
    if spec.task == "binary" and (target["kind"] != "binary" or len(classes) != 2):
        _mismatch(
            ["spec", "layers", len(spec.layers) - 1],
            f"The sigmoid head ({head}) is binary classification and needs exactly 2 "
            f"classes. Received: a {target['kind']} target with classes {classes[:10]}",
        )
    if spec.task == "categorical":
        if target["kind"] not in ("binary", "categorical"):
            _mismatch(
                ["spec", "layers", len(spec.layers) - 1],
                f"The softmax head ({head}) is k-class classification and needs class "
                f"labels. Received: a {target['kind']} target",
            )
        if len(classes) != spec.outputs:
            _mismatch(
                ["spec", "layers", len(spec.layers) - 1, "units"],
                f"The softmax head ({head}) has {spec.outputs} units but the dataset has "
                f"{len(classes)} classes {classes[:20]}. Received: units={spec.outputs}",
            )
    if spec.task == "regression":
        if any(isinstance(label, str) for label in classes):
            _mismatch(
                ["spec", "layers", len(spec.layers) - 1],
                f"The linear head ({head}) is regression and needs numeric targets. "
                f"Received: string classes {classes[:10]}",
            )
        outputs = target.get("outputs", 1)
        if outputs != spec.outputs:
            _mismatch(
                ["spec", "layers", len(spec.layers) - 1, "units"],
                f"The linear head ({head}) has {spec.outputs} outputs but the dataset's "
                f"target has {outputs}. Received: units={spec.outputs}",
            )


def _mismatch(loc: list[str | int], message: str) -> None:
    raise SpecDatasetMismatch(message, details=[problem(loc, message)])


@dataclass(frozen=True)
class LabelEncoding:
    task: Task
    classes: list[Any]
    one_hot: bool

    @classmethod
    def for_spec(cls, spec: ModelSpec, y: np.ndarray) -> LabelEncoding:
        classes = [] if spec.task == "regression" else _python_values(np.unique(y))
        return cls.for_model(spec.task, spec.compile.loss, classes)

    @classmethod
    def for_model(cls, task: Task, loss: str, classes: list[Any]) -> LabelEncoding:
        """The encoding a version was trained with, from its task, its compiled
        loss and its stored classes."""
        one_hot = task == "categorical" and loss != "sparse_categorical_crossentropy"
        return cls(task=task, classes=classes, one_hot=one_hot)

    def encode(self, y: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            y = y.astype("float32")
            return y.reshape(-1, 1) if y.ndim == 1 else y
        indices = np.searchsorted(np.asarray(self.classes), y)
        if self.task == "binary":
            return indices.astype("float32").reshape(-1, 1)
        if self.one_hot:
            return np.eye(len(self.classes), dtype="float32")[indices]
        return indices.astype("int32")

    def decode(self, outputs: np.ndarray) -> list[Any] | None:
        if self.task == "regression":
            return None
        if self.task == "binary":
            indices = (outputs[:, 0] >= 0.5).astype(int)
        else:
            indices = outputs.argmax(axis=1)
        return [self.classes[index] for index in indices]


def _python_values(values: np.ndarray) -> list[Any]:
    return [value.item() if hasattr(value, "item") else value for value in values]
