"""Hyperparameter search: a job's `search` object, and its trials as specs.

A search names dotted paths into the spec (`compile.optimizer.learning_rate`,
`layers.2.rate`, `seed`; list indices as numbers) and a range for each. Every
trial is the job's spec with its drawn values written in, validated as a
whole `ModelSpec`, so a search can only ever run specs a plain job could run.
All of it is checked before anything is queued: a bad path, range or drawn
value is a 422 at `["search", "space", "<path>"]`, a metric the trials will
not report one at `["search", "metric"]`.

Trials whose networks have the same shapes train side by side in one vmapped
program; `shape_groups` says which (its docstring lists what splits a group).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import (
    BaseModel,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from models.errors import SpecError, ValidationFailed, problem, quoted
from models.layers.registry import KINDS
from models.training.spec import (
    CLASSIFIER_METRICS,
    MAX_EPOCHS,
    Compile,
    EarlyStopping,
    Fit,
    ModelSpec,
    Optimizer,
    StrictModel,
)
from models.validation import as_validation_failed, validate

MAX_TRIALS = 1024
MAX_CHOICES = 64
MAX_DIMENSIONS = 32
MAX_RUNGS = 16
MAX_CHOICE_CHARS = 64
# numpy draws integers as int64; JSON numbers stay exact up to 2**53.
MAX_INT_BOUND = 2**53

Mode = Literal["min", "max"]


def _json_scalar(value: Any) -> Any:
    finite = not isinstance(value, float) or math.isfinite(value)
    if (value is None or isinstance(value, bool | int | float | str)) and finite:
        if isinstance(value, str) and len(value) > MAX_CHOICE_CHARS:
            raise ValueError(f"A choice's text is at most {MAX_CHOICE_CHARS} characters")
        return value
    raise ValueError("A choice holds JSON scalars: finite numbers, strings, true, false or null")


# One error for a bad value, not one per member of a union of scalar types.
Scalar = Annotated[
    Any,
    PlainValidator(_json_scalar),
    WithJsonSchema({"type": ["number", "string", "boolean", "null"]}),
]
Bound = Annotated[float, Strict(), Field(allow_inf_nan=False)]
IntBound = Annotated[int, Strict(), Field(ge=-MAX_INT_BOUND, le=MAX_INT_BOUND)]
SpacePath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$", max_length=128)
]
FORMS = ("choice", "uniform", "log_uniform", "int")


class Dimension(StrictModel):
    """One axis of the space: exactly one of `choice`, `uniform`, `log_uniform`, `int`."""

    choice: Annotated[list[Scalar], Field(min_length=1, max_length=MAX_CHOICES)] | None = None
    uniform: tuple[Bound, Bound] | None = None
    log_uniform: tuple[Bound, Bound] | None = None
    # `int` would shadow the builtin in the class body; JSON still says "int".
    integer: Annotated[tuple[IntBound, IntBound] | None, Field(alias="int")] = None

    @property
    def form(self) -> str:
        return next(form for form in FORMS if self._value(form) is not None)

    def _value(self, form: str) -> Any:
        return self.integer if form == "int" else getattr(self, form)

    @model_validator(mode="after")
    def _check_range(self) -> Dimension:
        given = [form for form in FORMS if self._value(form) is not None]
        if len(given) != 1:
            raise SpecError(
                (),
                "A dimension is exactly one of {'choice': [...]}, {'uniform': [lo, hi]}, "
                f"{{'log_uniform': [lo, hi]}} or {{'int': [lo, hi]}}. Received: {given or 'none'}",
            )
        form = given[0]
        if form == "choice":
            return self
        low, high = self._value(form)
        if low >= high:
            raise SpecError((), f"{form} needs lo < hi. Received: {form}=[{low}, {high}]")
        if form == "log_uniform" and low <= 0:
            raise SpecError(
                (),
                "log_uniform needs 0 < lo < hi: it draws the value's logarithm. "
                f"Received: log_uniform=[{low}, {high}]",
            )
        return self


class Halving(StrictModel):
    """Successive halving: at each rung (an epoch count) only the best `keep`
    fraction of the trials still running trains on."""

    rungs: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]], Field(min_length=1, max_length=MAX_RUNGS)
    ]
    keep: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _check_rungs(self) -> Halving:
        for index in range(1, len(self.rungs)):
            if self.rungs[index] <= self.rungs[index - 1]:
                raise SpecError(
                    ("rungs", index),
                    f"Halving rungs are epoch counts in increasing order. Received: {self.rungs}",
                )
        return self


class Search(StrictModel):
    trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] | None = None
    method: Literal["random", "grid"] = "random"
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    # None: val_loss when every trial validates, else loss (see `ranking`).
    metric: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # None: max for accuracy, auc, precision and recall, min for the rest.
    mode: Mode | None = None
    space: Annotated[dict[SpacePath, Dimension], Field(min_length=1, max_length=MAX_DIMENSIONS)]
    halving: Halving | None = None

    @model_validator(mode="after")
    def _check_method(self) -> Search:
        if self.method == "random":
            if self.trials is None:
                raise SpecError(
                    ("trials",),
                    f"A random search draws `trials` trials: give how many, 1 to {MAX_TRIALS}. "
                    "Received: no trials",
                )
            return self
        for path, dimension in self.space.items():
            if dimension.choice is None:
                raise SpecError(
                    ("space", path),
                    "A grid search takes every value of every dimension, so each must be a "
                    f"`choice`. Received: {path}={{{dimension.form!r}: ...}}",
                )
        size = self.grid_size
        if size > MAX_TRIALS:
            counts = ", ".join(f"{path} ({len(d.choice or [])})" for path, d in self.space.items())
            raise SpecError(
                ("space",),
                f"The grid has {size:,} combinations; at most {MAX_TRIALS} trials are allowed. "
                f"Received: {counts}",
            )
        if self.trials is not None and self.trials != size:
            raise SpecError(
                ("trials",),
                f"A grid search runs every combination, {size} here: leave `trials` out or "
                f"set it to {size}. Received: trials={self.trials}",
            )
        return self

    @property
    def grid_size(self) -> int:
        return math.prod(len(dimension.choice or ()) for dimension in self.space.values())


@dataclass(frozen=True)
class Trial:
    index: int
    params: dict[str, Any]  # {path: drawn value}, in the space's order
    spec: ModelSpec


def trial_specs(spec_dict: dict[str, Any], search: Search) -> list[Trial]:
    """Every trial of `search` on the job's spec, each validated as a ModelSpec;
    the metric and halving are checked against them. Raises ValidationFailed,
    its details located in the job body (`["search", "space", "<path>"]`)."""
    base = validate(ModelSpec, spec_dict, ("spec",)).model_dump(mode="json")
    problems = []
    for path, dimension in search.space.items():
        try:
            _place(copy.deepcopy(base), path, _some_value(dimension))
        except _BadPath as bad:
            problems.append(problem(["search", "space", path], f"{bad} Received: {path}"))
    _raise_if(problems)
    trials: list[Trial] = []
    refused: dict[tuple[Any, ...], dict[str, Any]] = {}
    for index, params in enumerate(_draw(search)):
        trial = copy.deepcopy(base)
        for path, value in params.items():
            _place(trial, path, value)
        try:
            trials.append(Trial(index, params, ModelSpec.model_validate(trial)))
        except ValidationError as exc:
            for detail in as_validation_failed(exc, ModelSpec, ()).details:
                place, message = _blame(detail, index, params)
                refused.setdefault(tuple(place), problem(place, message))
    _raise_if(list(refused.values()))
    ranking(search, trials)
    _check_halving(search, trials)
    return trials


def ranking(search: Search, trials: Sequence[Trial]) -> tuple[str, Mode]:
    """The metric trials are ranked by and whether lower or higher wins, after
    checking that every trial reports it."""
    validates = all(_validates(trial.spec) for trial in trials)
    metric = search.metric or ("val_loss" if validates else "loss")
    for trial in trials:
        reported = _reported_metrics(trial.spec)
        if metric in reported:
            continue
        if metric.startswith("val_") and metric.removeprefix("val_") in reported:
            reason = (
                f"{metric!r} is measured on held-out rows, so every trial needs "
                "fit.validation_split above 0 or fit.folds. Received: "
                f"metric={metric!r}, trial {trial.index} has "
                f"validation_split={trial.spec.fit.validation_split}"
            )
        else:
            reason = (
                f"The metric must be one the trials report: {sorted(reported)}. "
                f"Received: metric={metric!r}"
            )
        _raise_if([problem(["search", "metric"], reason)])
    mode = search.mode or ("max" if metric.removeprefix("val_") in CLASSIFIER_METRICS else "min")
    return metric, mode


# What may differ between trials of one group: the vmapped program takes these
# as per-trial numbers. None for an optimizer float means that optimizer's
# default (Keras': learning_rate 0.001 for adam, 0.01 for sgd; adamw's
# weight_decay 0.004), which the program resolves per trial.
VARY_WITHIN_GROUP = (
    "seed",
    "compile.optimizer.learning_rate",
    "compile.optimizer.momentum",  # zero versus non-zero splits: see `shape_groups`
    "compile.optimizer.weight_decay",
    # Each layer kind's per_trial_fields (models.layers): dropout's rate, ...
    *dict.fromkeys(
        f"layers.<i>.{field}" for kind in KINDS.values() for field in kind.per_trial_fields
    ),
)


def shape_groups(trials: Sequence[Trial]) -> list[list[int]]:
    """Trial indices grouped so that each group trains side by side in one
    vmapped program, groups in order of their first trial.

    Within a group only the fields of VARY_WITHIN_GROUP differ. Every other
    field of the spec splits groups, among them: input_shape; each layer's
    type, units, activation, use_bias, whether it has a kernel_regularizer,
    batch_normalization momentum and epsilon; compile.loss, compile.metrics,
    the optimizer's name, nesterov, and whether its momentum is non-zero (Keras
    keeps a momentum slot per weight only then, so the optimizer state has
    other shapes); fit.epochs, batch_size, validation_split, shuffle,
    early_stopping; precision; device. A field added to the spec later splits
    groups too until it is named in VARY_WITHIN_GROUP and `_group_key`.
    """
    groups: dict[str, list[int]] = {}
    for trial in trials:
        groups.setdefault(_group_key(trial.spec), []).append(trial.index)
    return list(groups.values())


def _group_key(spec: ModelSpec) -> str:
    shape = spec.model_dump(mode="json")
    shape["seed"] = None
    options = spec.compile.optimizer_options
    shape["compile"]["optimizer"] = {
        "name": options.name,
        "nesterov": bool(options.nesterov),
        "momentum_slot": bool(options.momentum),
    }
    for layer in shape["layers"]:
        for field in KINDS[layer["type"]].per_trial_fields:
            _forget(layer, field.split("."))
    return json.dumps(shape, sort_keys=True)


def _forget(node: dict[str, Any], parts: list[str]) -> None:
    """Blank the value at `parts` below `node`, where the objects above it are
    there: a regularizer's factors may differ within a group, having one not."""
    for part in parts[:-1]:
        node = node.get(part) or {}
    if parts[-1] in node:
        node[parts[-1]] = None


# --- paths into the spec ----------------------------------------------------------------

LAYER_CLASSES: dict[str, type[StrictModel]] = {name: kind.spec for name, kind in KINDS.items()}


def _layer_objects() -> dict[tuple[type[BaseModel], str], type[BaseModel]]:
    """Each layer field that holds an object (a dense layer's kernel_regularizer)."""
    return {
        (layer_class, name): nested
        for layer_class in LAYER_CLASSES.values()
        for name, field in layer_class.model_fields.items()
        for nested in get_args(field.annotation)
        if isinstance(nested, type) and issubclass(nested, BaseModel)
    }


# The objects inside the spec a path may walk into; a path ending at one is refused.
NESTED: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
    (ModelSpec, "compile"): Compile,
    (ModelSpec, "fit"): Fit,
    (Compile, "optimizer"): Optimizer,
    (Fit, "early_stopping"): EarlyStopping,
    **_layer_objects(),
}
NOT_SEARCHABLE: dict[tuple[type[BaseModel], str], str] = {
    (ModelSpec, "input_shape"): "the input shape is the dataset's, the same for every trial",
    (ModelSpec, "device"): "a job runs on one queue's workers, so its trials share a device",
    (Compile, "metrics"): "the metrics are what trials are compared by",
    (Fit, "folds"): "folds are how the whole search validates, not a trial's choice",
}


class _BadPath(Exception):
    pass


def _place(spec: dict[str, Any], path: str, value: Any) -> None:
    """Write `value` at `path`, or raise _BadPath saying why the path cannot be
    searched. An optimizer given as a name becomes `{"name": <it>}` when a path
    goes inside it, and a name searched where the spec has an object renames
    that object, so the two paths combine in either order."""
    parts = path.split(".")
    if parts[0] == "search":
        raise _BadPath("`search` is the search itself, beside the spec: paths point into the spec.")
    model: type[BaseModel] = ModelSpec
    node = spec
    position = 0
    while True:
        name, last = parts[position], position == len(parts) - 1
        _check_field(model, name, parts[:position])
        if model is ModelSpec and name == "layers":
            node, model = _layer_at(node["layers"], parts[position + 1 : position + 2])
            position += 2
            if position == len(parts):
                raise _BadPath(
                    f"{'.'.join(parts)} is a whole layer: search one of its fields, e.g. "
                    f"{'.'.join(parts)}.{_example_field(model)}."
                )
            continue
        child = NESTED.get((model, name))
        if child is Optimizer and last:
            if isinstance(node.get(name), dict):
                node[name]["name"] = value
            else:
                node[name] = value
            return
        if child is None:
            if not last:
                raise _BadPath(
                    f"{'.'.join(parts[: position + 1])} is a value, not an object: it has no "
                    f"field {parts[position + 1]!r}."
                )
            node[name] = value
            return
        if last:
            raise _BadPath(
                f"{path} is an object: search one of its fields, e.g. "
                f"{path}.{_example_field(child)}."
            )
        current = node.get(name)
        if child is Optimizer and not isinstance(current, dict | None):
            node[name] = {"name": current}
        elif current is None:
            node[name] = {}
        node, model = node[name], child
        position += 1


def _check_field(model: type[BaseModel], name: str, parent: list[str]) -> None:
    fields = list(model.model_fields)
    where = ".".join(parent) or "The spec"
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise _BadPath(f"{where} has no field {name!r}; its fields are {fields}.{hint}")
    reason = NOT_SEARCHABLE.get((model, name))
    if name == "type" and model in LAYER_CLASSES.values():
        reason = "a layer's type decides which fields it has; search a field of the layer"
    if reason:
        raise _BadPath(f"{'.'.join([*parent, name])} cannot be searched: {reason}.")


def _layer_at(layers: list[dict[str, Any]], index_part: list[str]) -> tuple[Any, Any]:
    count = len(layers)
    if not index_part:
        raise _BadPath("layers is the list of layers: search a field of one, e.g. layers.0.units.")
    if not index_part[0].isdigit() or int(index_part[0]) >= count:
        raise _BadPath(
            f"layers.{index_part[0]} names no layer: the spec has {count} layers, "
            f"layers.0 to layers.{count - 1}."
        )
    layer = layers[int(index_part[0])]
    return layer, LAYER_CLASSES[layer["type"]]


def _example_field(model: type[BaseModel]) -> str:
    return next(name for name in model.model_fields if name != "type")


# --- drawing and blaming ----------------------------------------------------------------


def _draw(search: Search) -> list[dict[str, Any]]:
    paths = list(search.space)
    if search.method == "grid":
        # The first dimension varies slowest, as in nested loops written in the space's order.
        values = [search.space[path].choice or [] for path in paths]
        return [
            dict(zip(paths, combination, strict=True)) for combination in itertools.product(*values)
        ]
    generator = np.random.default_rng(search.seed)
    assert search.trials is not None  # Search requires it for random
    return [
        {path: _sample(search.space[path], generator) for path in paths}
        for _ in range(search.trials)
    ]


def _sample(dimension: Dimension, generator: np.random.Generator) -> Any:
    if dimension.choice is not None:
        return dimension.choice[int(generator.integers(len(dimension.choice)))]
    if dimension.integer is not None:
        return int(generator.integers(*dimension.integer, endpoint=True))
    if dimension.uniform is not None:
        return float(generator.uniform(*dimension.uniform))
    assert dimension.log_uniform is not None
    low, high = dimension.log_uniform
    # exp(log(x)) may round a hair past either bound.
    return min(max(math.exp(generator.uniform(math.log(low), math.log(high))), low), high)


def _some_value(dimension: Dimension) -> Any:
    """A value of the dimension, to try its path before drawing."""
    if dimension.choice is not None:
        return dimension.choice[0]
    ranges = dimension.uniform or dimension.log_uniform or dimension.integer
    assert ranges is not None
    return ranges[0]


def _blame(detail: dict[str, Any], index: int, params: dict[str, Any]) -> tuple[list[Any], str]:
    """Where in the space a trial's spec error belongs: the searched path that
    shares the most of the error's location (the path itself, the object
    around it, or the layers a too-wide layer overflows)."""
    where = [str(part) for part in detail["loc"]]
    best, shared = None, 0
    for path in params:
        parts = path.split(".")
        common = next(
            (n for n, (a, b) in enumerate(zip(parts, where, strict=False)) if a != b),
            min(len(parts), len(where)),
        )
        if common > shared:
            best, shared = path, common
    if best is None:
        drawn = ", ".join(f"{path}={quoted(value)}" for path, value in params.items())
        return [
            "search",
            "space",
        ], f"Trial {index} ({drawn}) is refused by the spec: {detail['msg']}"
    value = quoted(params[best])
    if where == best.split("."):
        return ["search", "space", best], f"{best}={value} (trial {index}): {detail['msg']}"
    return ["search", "space", best], (
        f"{best}={value} (trial {index}) makes the spec invalid at {'.'.join(where)}: "
        f"{detail['msg']}"
    )


def _raise_if(problems: list[dict[str, Any]]) -> None:
    if problems:
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationFailed(f"The request is invalid at {where}: {first['msg']}", problems)


def _validates(spec: ModelSpec) -> bool:
    return spec.fit.validation_split > 0 or spec.fit.folds is not None


def _reported_metrics(spec: ModelSpec) -> set[str]:
    trained = {"loss", *spec.compile.metrics}
    return trained | {f"val_{name}" for name in trained} if _validates(spec) else trained


def _check_halving(search: Search, trials: Sequence[Trial]) -> None:
    if search.halving is None:
        return
    rungs = search.halving.rungs
    for trial in trials:
        epochs = trial.spec.fit.epochs
        for index, rung in enumerate(rungs):
            if rung >= epochs:
                _raise_if([problem(
                    ["search", "halving", "rungs", index],
                    f"A halving rung stops trials before their last epoch, so each must be "
                    f"below fit.epochs ({epochs} in trial {trial.index}). Received: rungs={rungs}",
                )])  # fmt: skip
