"""What a group's members start from: each member's initial values, those
models.training.fit.train builds for the member's spec on the member's
training rows, built as few times as the values differ.
models.training.fused.group_trainer stacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.datasets import Dataset
from models.layers.registry import kind_of
from models.training.builder import adapt, build_model, build_optimizer
from models.training.fused.trainer import model_values
from models.training.search.space import Trial
from models.training.spec import ModelSpec

if TYPE_CHECKING:
    import keras

Member = tuple[int, int | None]  # (trial position in the group, fold index, REFIT or None)
REFIT = -1  # the fold index of a trial's member that trains on every row


@dataclass
class GroupInputs:
    """What every program of a group starts from: each member's initial
    values, each trial's seed and optimizer's weight decay, and the model
    whose variables are the programs' placeholders."""

    trials: list[Trial]
    states: dict[Member, Any]
    seeds: list[int]
    weight_decays: list[float | None]  # Keras' default where the spec has none
    model: keras.Sequential


def initial_inputs(
    trials: list[Trial], dataset: Dataset, splits: list[tuple[np.ndarray, np.ndarray]] | None,
    refit: bool = False,
) -> GroupInputs:  # fmt: skip
    """Each member's initial values, those of the model train() builds for the
    trial's spec on the member's training rows (its fold's, with folds; every
    row for its refit)."""
    training_rows = trials[0].spec.fit.training_rows(len(dataset.x))
    member_rows: list[tuple[int | None, Any]] = (
        [(None, slice(None, training_rows))]
        if splits is None
        else [(fold, training) for fold, (training, _) in enumerate(splits)]
    )
    if refit:
        member_rows.append((REFIT, slice(None)))
    # Only a layer that adapts (a normalization) depends on the rows: other
    # models are built once per trial, not once per fold.
    adapts = any(kind_of(layer).adapts for layer in trials[0].spec.layers)
    states: dict[Member, Any] = {}
    weight_decays: list[float | None] = []
    model = None
    # Trials of one group with the same seed start from the same values but for
    # the learning rate (the rest that differs are the program's inputs): a
    # model is built once per seed (and fold, when it adapts), not per trial,
    # and each trial's learning rate written into a copy of its values
    # (bench/RESULTS.md: what a build costs a group's set-up).
    built: dict[tuple[int | None, int | None], tuple[Any, int | None]] = {}
    optimizers: dict[str, Any] = {}  # one per distinct optimizer of the spec: they take ms too
    made: tuple[Any, int | None] | None = None
    for position, trial in enumerate(trials):
        options = trial.spec.compile.optimizer_options
        optimizer = optimizers.get(options.model_dump_json())
        if optimizer is None:
            optimizer = optimizers[options.model_dump_json()] = build_optimizer(options)
        weight_decays.append(optimizer.weight_decay)  # Keras' default where the spec has none
        for fold, rows in member_rows:
            key = (trial.spec.seed, fold if adapts else None)
            if trial.spec.seed is not None and key in built:
                made = built[key]
            elif adapts or fold in (None, 0):
                model = _initial_model(trial.spec, dataset.x[rows])
                made = (model_values(model), _learning_rate_slot(model))
                if trial.spec.seed is not None:
                    built[key] = made
            # else: a later fold of an unseeded trial: its first fold's values
            assert made is not None  # every trial's first member builds or finds one
            states[(position, fold)] = _with_learning_rate(made[0], made[1], optimizer)
    assert model is not None  # a group has a trial
    seeds = [
        trial.spec.seed if trial.spec.seed is not None else np.random.randint(2**31)
        for trial in trials
    ]
    # The last model built is the group's, its variables only the programs' placeholders.
    return GroupInputs(trials, states, seeds, weight_decays, model)


def _learning_rate_slot(model: Any) -> int | None:
    """Where the optimizer's learning rate is among its variables (None: not a
    variable, e.g. a schedule)."""
    rate = getattr(model.optimizer, "_learning_rate", None)
    found = [i for i, variable in enumerate(model.optimizer.variables) if variable is rate]
    return found[0] if found else None


def _with_learning_rate(values: Any, slot: int | None, optimizer: Any) -> Any:
    """`values` (model_values' layout) with `optimizer`'s learning rate in `slot`,
    as a model built with that optimizer holds it."""
    if slot is None:
        return values
    trainable, non_trainable, optimizer_values = values
    rate = np.asarray(optimizer._learning_rate.value, dtype=optimizer_values[slot].dtype)
    return trainable, non_trainable, [*optimizer_values[:slot], rate, *optimizer_values[slot + 1 :]]


def _initial_model(spec: ModelSpec, x_train: np.ndarray) -> keras.Sequential:
    """The model models.training.fit.train builds for `spec`, built the same way
    (session cleared, global seed set, adapted, optimizer built), so its initial
    values equal the single-trial run's."""
    import keras

    # Keras' global state (layer names, the global seed generator) is reset as
    # train() resets it; its garbage collection (most of a group's set-up) is
    # not needed for equal values, and train_group runs it once.
    keras.backend.clear_session(free_memory=False)
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    model = build_model(spec)
    adapt(model, x_train)
    model.optimizer.build(model.trainable_variables)
    return model
