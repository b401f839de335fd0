"""The model spec: a dense Keras network described as data.

The spec is the only way a network enters the system. Every field is drawn
from an allow-list (`extra="forbid"`, literal names), so nothing in it can name
code, a module, a file or a URL; the builder turns it into Keras objects with
our own code. Bounds keep a single job from exhausting a worker. Each
layer's model, with its limits, lives with its kind in models.layers; the
`Layer` union here is made from their registry.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from models.errors import SpecError

# The layer kinds' names, as callers have imported them from here.
from models.layers.activations import Activation as Activation
from models.layers.batch_normalization import BatchNormalizationLayer as BatchNormalizationLayer
from models.layers.dense import MAX_UNITS as MAX_UNITS
from models.layers.dense import DenseLayer
from models.layers.dense import Regularizer as Regularizer
from models.layers.dropout import DropoutLayer as DropoutLayer
from models.layers.flatten import FlattenLayer
from models.layers.kind import LayerSpec
from models.layers.normalization import NormalizationLayer
from models.layers.registry import KINDS, kind_of, layer_union
from models.validation import StrictModel

MAX_LAYERS = 64
MAX_PARAMS = 50_000_000
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_DIM = 4_096
MAX_FEATURES = 1_048_576

Task = Literal["binary", "categorical", "regression"]

LOSSES_BY_TASK: dict[str, tuple[str, ...]] = {
    # MSE on a sigmoid head is legal: the seed's programs do it.
    "binary": ("binary_crossentropy", "mean_squared_error", "mse", "mean_absolute_error",
               "mae", "huber", "hinge"),
    "categorical": ("categorical_crossentropy", "sparse_categorical_crossentropy",
                    "mean_squared_error", "mse", "kl_divergence"),
    "regression": ("mean_squared_error", "mse", "mean_absolute_error", "mae", "huber",
                   "mean_squared_logarithmic_error", "log_cosh", "mean_absolute_percentage_error"),
}  # fmt: skip
Loss = Literal[
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "huber", "hinge",
    "kl_divergence", "mean_squared_logarithmic_error", "log_cosh",
    "mean_absolute_percentage_error",
]  # fmt: skip

CLASSIFIER_METRICS = ("accuracy", "binary_accuracy", "categorical_accuracy", "auc",
                      "precision", "recall")  # fmt: skip
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "binary_accuracy", "auc", "precision", "recall"),
    "categorical": ("accuracy", "categorical_accuracy"),
    "regression": (),
}
Metric = Literal[
    "accuracy", "binary_accuracy", "categorical_accuracy", "auc", "precision", "recall",
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "root_mean_squared_error",
    "mean_absolute_percentage_error",
]  # fmt: skip
ERROR_METRICS = ("mean_squared_error", "mse", "mean_absolute_error", "mae",
                 "root_mean_squared_error", "mean_absolute_percentage_error")  # fmt: skip

OptimizerName = Literal["adam", "sgd", "rmsprop", "nadam", "adagrad", "adamw"]
Monitor = Literal["loss", "val_loss", "accuracy", "val_accuracy"]

# Layer types people may try that would run their code or load something.
CODE_LAYER_TYPES = ("lambda", "custom", "tfoplambda", "functional", "sequential", "model")


# mypy cannot read a union made at run time: it checks layers as LayerSpec.
if TYPE_CHECKING:
    Layer = LayerSpec
else:
    Layer = layer_union()


class Optimizer(StrictModel):
    name: OptimizerName
    learning_rate: Annotated[float, Field(gt=0, le=10)] | None = None
    momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    nesterov: bool | None = None
    weight_decay: Annotated[float, Field(ge=0, le=1)] | None = None

    @model_validator(mode="after")
    def _check_options(self) -> Optimizer:
        if self.momentum is not None and self.name not in ("sgd", "rmsprop"):
            raise SpecError(
                ("momentum",),
                f"`momentum` applies to sgd and rmsprop only. Received: name={self.name!r}",
            )
        if self.nesterov is not None and self.name != "sgd":
            raise SpecError(
                ("nesterov",), f"`nesterov` applies to sgd only. Received: name={self.name!r}"
            )
        return self


def _optimizer_form(value: Any) -> str:
    return "Optimizer" if isinstance(value, dict | Optimizer) else "optimizer_name"


class Compile(StrictModel):
    loss: Loss
    # A string is only ever a name and an object only ever an Optimizer, so an error
    # names the one form the user sent rather than both union members.
    optimizer: Annotated[
        Annotated[OptimizerName, Tag("optimizer_name")] | Annotated[Optimizer, Tag("Optimizer")],
        Discriminator(_optimizer_form),
    ] = "adam"
    metrics: Annotated[list[Metric], Field(max_length=8)] = Field(default_factory=list)

    @property
    def optimizer_options(self) -> Optimizer:
        if isinstance(self.optimizer, Optimizer):
            return self.optimizer
        return Optimizer(name=self.optimizer)


class EarlyStopping(StrictModel):
    monitor: Monitor = "val_loss"
    patience: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 5
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best_weights: bool = False


MIN_FOLDS = 2
MAX_FOLDS = 10


class Fit(StrictModel):
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] = 32
    validation_split: Annotated[float, Field(ge=0, lt=1)] = 0.0
    shuffle: bool = True
    early_stopping: EarlyStopping | None = None
    # k-fold validation: k models on the k splits, side by side, then a refit
    # on every row is what gets published (models.training.search.folds).
    folds: Annotated[int, Field(ge=MIN_FOLDS, le=MAX_FOLDS)] | None = None

    def training_rows(self, rows: int) -> int:
        """How many of `rows` train; the rest validate (Keras' rule: the last
        fraction, cut before any shuffling)."""
        if not self.validation_split:
            return rows
        return int(math.floor(rows * (1.0 - self.validation_split)))

    @model_validator(mode="after")
    def _check_folds(self) -> Fit:
        if self.folds is None:
            return self
        if self.validation_split:
            raise SpecError(
                ("folds",),
                "k-fold validation holds out each fold in turn, so it takes no "
                f"validation_split as well. Received: folds={self.folds}, "
                f"validation_split={self.validation_split}",
            )
        if self.early_stopping is not None:
            raise SpecError(
                ("folds",),
                "k-fold validation trains every fold for the same epochs, and the refit "
                "has no held-out rows to stop on: early_stopping cannot be combined with it. "
                f"Received: folds={self.folds}, early_stopping={self.early_stopping.model_dump()}",
            )
        return self

    @model_validator(mode="after")
    def _check_monitor(self) -> Fit:
        stop = self.early_stopping
        if stop and stop.monitor.startswith("val_") and self.validation_split == 0:
            raise SpecError(
                ("early_stopping", "monitor"),
                f"early_stopping monitors {stop.monitor!r}, which needs a validation_split "
                "above 0. Received: validation_split=0",
            )
        return self


class ModelSpec(StrictModel):
    input_shape: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_DIM)]], Field(min_length=1, max_length=4)
    ]
    layers: Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)]
    compile: Compile
    fit: Fit
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    device: Literal["auto", "cpu", "gpu"] = "auto"
    # Hidden layers compute in bfloat16 with float32 weights; the head stays
    # float32. Made for GPUs (tensor cores); it runs, slowly, on CPUs too.
    precision: Literal["float32", "mixed_bfloat16"] = "float32"

    @field_validator("layers", mode="before")
    @classmethod
    def _refuse_code_layers(cls, layers: Any) -> Any:
        # Caught before the discriminator so the message says why, not just "unknown".
        if isinstance(layers, list):
            for index, layer in enumerate(layers):
                kind = layer.get("type") if isinstance(layer, dict) else None
                if isinstance(kind, str) and _looks_like_code(kind):
                    raise SpecError(
                        (index, "type"),
                        f"Layer {index} has type {kind!r}, which would run user code or load "
                        f"an object by name; only {_ALLOWED_TYPES} are allowed. "
                        f"Received: type={kind!r}",
                    )
        return layers

    @field_validator("input_shape")
    @classmethod
    def _bound_features(cls, shape: list[int]) -> list[int]:
        if math.prod(shape) > MAX_FEATURES:
            raise ValueError(
                f"input_shape has {math.prod(shape)} features per sample; at most "
                f"{MAX_FEATURES} are allowed. Received: {shape}"
            )
        return shape

    @model_validator(mode="after")
    def _check_network(self) -> ModelSpec:
        _check_flatten_rule(self)
        _check_normalization_place(self)
        _check_head(self)
        _check_loss_and_metrics(self)
        _check_parameter_count(self)
        return self

    @property
    def head(self) -> DenseLayer:
        head = self.layers[-1]
        assert isinstance(head, DenseLayer)  # guaranteed by _check_head
        return head

    @property
    def task(self) -> Task:
        return task_of(self.head)

    @property
    def outputs(self) -> int:
        return self.head.units


def task_of(head: DenseLayer) -> Task:
    if head.activation == "sigmoid":
        return "binary"
    if head.activation == "softmax":
        return "categorical"
    return "regression"


def count_parameters(spec: ModelSpec) -> int:
    shape = tuple(spec.input_shape)
    total = 0
    for layer in spec.layers:
        kind = kind_of(layer)
        total += kind.parameters(layer, shape)
        shape = kind.output_shape(layer, shape)
    return total


_ALLOWED_TYPES = ", ".join(list(KINDS)[:-1]) + f" and {list(KINDS)[-1]}"


def _looks_like_code(kind: str) -> bool:
    lowered = kind.lower()
    return lowered in CODE_LAYER_TYPES or any(mark in kind for mark in (".", "/", ":", "\\"))


def _check_flatten_rule(spec: ModelSpec) -> None:
    if len(spec.input_shape) == 1:
        return
    for index, layer in enumerate(spec.layers):
        if isinstance(layer, FlattenLayer):
            return
        if isinstance(layer, DenseLayer):
            raise SpecError(
                ("layers", index),
                f"input_shape {spec.input_shape} has rank {len(spec.input_shape)}: a "
                f"'flatten' layer must come before the first 'dense' layer (layer {index}). "
                f"Received: layers[{index}].type='dense'",
            )


def _check_normalization_place(spec: ModelSpec) -> None:
    """Normalization is adapted on the raw training inputs (flattened at most),
    so nothing trained may stand before it; and one is all a network needs."""
    placed: int | None = None
    for index, layer in enumerate(spec.layers):
        if not isinstance(layer, NormalizationLayer):
            continue
        if placed is not None:
            raise SpecError(
                ("layers", index, "type"),
                f"Only one 'normalization' layer is allowed, and layer {placed} is one. "
                f"Received: layers[{index}].type='normalization'",
            )
        if index > 1 or (index == 1 and not isinstance(spec.layers[0], FlattenLayer)):
            raise SpecError(
                ("layers", index, "type"),
                "A 'normalization' layer is adapted on the raw training inputs, so it must "
                "be the first layer, or directly follow a first 'flatten'. Received: "
                f"layers[{index}].type='normalization' after layers[{index - 1}].type="
                f"{spec.layers[index - 1].type!r}",
            )
        placed = index


def _check_head(spec: ModelSpec) -> None:
    index = len(spec.layers) - 1
    head = spec.layers[index]
    if not isinstance(head, DenseLayer):
        raise SpecError(
            ("layers", index, "type"),
            f"The last layer is the head and must be 'dense'. Received: type={head.type!r}",
        )
    if head.activation == "sigmoid" and head.units != 1:
        raise SpecError(
            ("layers", index, "units"),
            "A sigmoid head is binary classification and needs exactly 1 unit. "
            f"Received: units={head.units}",
        )
    if head.activation == "softmax" and head.units < 2:
        raise SpecError(
            ("layers", index, "units"),
            "A softmax head is k-class classification and needs at least 2 units. "
            f"Received: units={head.units}",
        )
    if head.activation not in ("sigmoid", "softmax", "linear"):
        raise SpecError(
            ("layers", index, "activation"),
            "The head's activation decides the task: 'sigmoid' (binary), 'softmax' "
            f"(k-class) or 'linear' (regression). Received: activation={head.activation!r}",
        )


def _check_loss_and_metrics(spec: ModelSpec) -> None:
    task = spec.task
    head_index = len(spec.layers) - 1
    loss = spec.compile.loss
    if loss not in LOSSES_BY_TASK[task]:
        raise SpecError(
            ("compile", "loss"),
            f"Loss {loss!r} does not fit the {spec.head.activation} head "
            f"(layers[{head_index}], task {task!r}); expected one of "
            f"{list(LOSSES_BY_TASK[task])}. Received: loss={loss!r}",
        )
    for index, metric in enumerate(spec.compile.metrics):
        allowed = METRICS_BY_TASK[task] + ERROR_METRICS
        if metric not in allowed:
            raise SpecError(
                ("compile", "metrics", index),
                f"Metric {metric!r} does not fit the {spec.head.activation} head "
                f"(layers[{head_index}], task {task!r}); expected one of {list(allowed)}. "
                f"Received: metrics[{index}]={metric!r}",
            )


def _check_parameter_count(spec: ModelSpec) -> None:
    total = count_parameters(spec)
    if total > MAX_PARAMS:
        raise SpecError(
            ("layers",),
            f"The network has {total:,} parameters; at most {MAX_PARAMS:,} are allowed. "
            f"Received: {len(spec.layers)} layers on input_shape {spec.input_shape}",
        )
