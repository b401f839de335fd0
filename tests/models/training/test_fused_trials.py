"""Trials side by side (models.training.fused_trials, a prototype) against each
trial trained alone by the fused trainer: without shuffling, the vmapped
program must end every trial where it ends alone, its validation too, after
one compilation for the whole group."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from models.datasets import Dataset
from models.errors import JobCancelled
from models.training.fit import SilentObserver, TrainingResult, train
from models.training.fused import _values
from models.training.fused_trials import GroupResult, program_groups, train_group
from models.training.search import Search, Trial, shape_groups, trial_specs
from models.validation import validate

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="fused training is JAX")

GENERATOR = np.random.default_rng(15)
X = GENERATOR.normal(size=(53, 6)).astype("float32")  # 42 training rows: a partial last batch
DATASET = Dataset(X, np.where(X[:, 0] + X[:, 1] > 0, "yes", "no"))


def binary_spec() -> dict[str, Any]:
    """A tiny binary network with a dropout layer, whose seed generator is
    per-trial state too."""
    return {
        "input_shape": [6],
        "layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dropout", "rate": 0.25},
            {"type": "dense", "units": 4, "activation": "tanh"},
            {"type": "dense", "units": 1, "activation": "sigmoid"},
        ],
        "compile": {
            "loss": "binary_crossentropy",
            "optimizer": {"name": "adam"},
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 3, "batch_size": 8, "shuffle": False, "validation_split": 0.2},
        "seed": 0,
    }


def trials_of(space: dict[str, Any], spec: dict[str, Any] | None = None) -> list[Trial]:
    search = validate(Search, {"space": space, "method": "grid"}, ("search",))
    return trial_specs(spec or binary_spec(), search)


LEARNING_RATE_BY_SEED = {
    "compile.optimizer.learning_rate": {"choice": [0.003, 0.05]},
    "seed": {"choice": [1, 2]},
}


@pytest.fixture(scope="module")
def trained() -> tuple[list[Trial], GroupResult, list[TrainingResult]]:
    trials = trials_of(LEARNING_RATE_BY_SEED)
    group = train_group(trials, DATASET)
    alone = [train(trial.spec, DATASET, SilentObserver(), fused=True) for trial in trials]
    return trials, group, alone


def test_every_trial_ends_where_it_ends_alone(
    trained: tuple[list[Trial], GroupResult, list[TrainingResult]],
) -> None:
    trials, group, alone = trained
    assert len(trials) == 4
    assert {(t.spec.seed, t.spec.compile.optimizer_options.learning_rate) for t in trials} == {
        (1, 0.003), (1, 0.05), (2, 0.003), (2, 0.05)
    }  # fmt: skip
    for position, single in enumerate(alone):
        history = group.histories[position]
        assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
        for name, values in single.history.items():
            np.testing.assert_allclose(history[name], values, rtol=0, atol=1e-5, err_msg=name)
        trainable, non_trainable, optimizer_values = group.weights(position)
        # All of the state: weights, dropout's seed generator, the optimizer's slots and step.
        for got, expected in zip(
            (trainable, non_trainable, optimizer_values), _values(single.model), strict=True
        ):
            assert len(got) == len(expected)
            for got_value, expected_value in zip(got, expected, strict=True):
                np.testing.assert_allclose(got_value, expected_value, rtol=0, atol=1e-5)
        # The learning rate is the trial's own, carried in the optimizer's state.
        expected_rate = trials[position].spec.compile.optimizer_options.learning_rate
        assert np.float32(expected_rate) in [np.float32(v) for v in optimizer_values if v.ndim == 0]
    # The trials did differ: otherwise matching them proves little.
    assert len({round(h["loss"][-1], 6) for h in group.histories}) == 4


def test_the_group_compiles_once(
    trained: tuple[list[Trial], GroupResult, list[TrainingResult]],
) -> None:
    _, group, _ = trained
    assert group.traces == {"train": 1, "evaluate": 1}


def test_a_trial_result_saves_and_predicts_as_it_would_alone(
    trained: tuple[list[Trial], GroupResult, list[TrainingResult]], tmp_path: Any
) -> None:
    _, group, alone = trained
    result = group.result(3)
    assert result.metrics == {name: values[-1] for name, values in group.histories[3].items()}
    assert result.epochs_run == 3
    path = tmp_path / "trial.keras"
    result.model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), alone[3].model.predict(X, verbose=0), rtol=0, atol=1e-5
    )


def test_dropout_rates_vary_inside_one_program() -> None:
    """The rate is a per-trial input of the program, not Keras' Python float."""
    trials = trials_of(
        {"layers.1.rate": {"choice": [0.1, 0.45]}, "compile.optimizer.learning_rate":
         {"choice": [0.01, 0.03]}}
    )  # fmt: skip
    assert program_groups(trials) == [[0, 1, 2, 3]]
    group = train_group(trials, DATASET)
    assert group.traces == {"train": 1, "evaluate": 1}
    for position, trial in enumerate(trials):
        alone = train(trial.spec, DATASET, SilentObserver(), fused=True)
        for name, values in alone.history.items():
            np.testing.assert_allclose(
                group.histories[position][name], values, rtol=0, atol=1e-5, err_msg=name
            )
    # The saved model is plain Keras (the traced dropout is gone once traced),
    # configured as the trial asked.
    assert "call" not in vars(group.model.layers[1])
    for position in (0, 3):
        saved = group.result(position).model
        assert saved.layers[1].get_config()["rate"] == trials[position].params["layers.1.rate"]
    assert len({round(h["loss"][-1], 6) for h in group.histories}) == 4


def test_regularization_factors_vary_inside_one_program() -> None:
    spec = binary_spec()
    spec["layers"][0]["kernel_regularizer"] = {"l2": 0.01}
    spec["layers"][2]["kernel_regularizer"] = {"l1": 0.02}
    trials = trials_of(
        {"layers.0.kernel_regularizer.l2": {"choice": [0.0, 0.05]},
         "layers.2.kernel_regularizer.l1": {"choice": [0.0, 0.1]}},
        spec,
    )  # fmt: skip
    assert program_groups(trials) == [[0, 1, 2, 3]]
    group = train_group(trials, DATASET)
    assert group.traces == {"train": 1, "evaluate": 1}
    for position, trial in enumerate(trials):
        alone = train(trial.spec, DATASET, SilentObserver(), fused=True)
        for name, values in alone.history.items():
            np.testing.assert_allclose(
                group.histories[position][name], values, rtol=0, atol=1e-5, err_msg=name
            )
    assert group.model.layers[0].kernel.regularizer.l2 == 0.05  # Keras' own, the last trial's
    model = group.result(1).model
    assert model.layers[0].kernel.regularizer.get_config()["l2"] == 0.0
    assert model.layers[2].kernel_regularizer.get_config()["l1"] == 0.1
    assert len({round(h["loss"][-1], 6) for h in group.histories}) == 4


def test_weight_decay_varies_inside_one_program() -> None:
    """With and without decay (None: Keras skips it) side by side, on adam."""
    trials = trials_of(
        {"compile.optimizer.weight_decay": {"choice": [None, 0.05, 0.2]}, "seed": {"choice": [4]}}
    )
    assert program_groups(trials) == [[0, 1, 2]]
    group = train_group(trials, DATASET)
    for position, trial in enumerate(trials):
        alone = train(trial.spec, DATASET, SilentObserver(), fused=True)
        for name, values in alone.history.items():
            np.testing.assert_allclose(
                group.histories[position][name], values, rtol=0, atol=1e-5, err_msg=name
            )
    assert len({round(h["loss"][-1], 6) for h in group.histories}) == 3
    assert group.result(0).model.optimizer.get_config()["weight_decay"] is None
    assert group.result(2).model.optimizer.get_config()["weight_decay"] == 0.2


def test_untraced_hyperparameters_split_programs_not_shapes() -> None:
    spec = binary_spec()
    spec["compile"]["optimizer"] = {"name": "sgd", "momentum": 0.5}
    trials = trials_of(
        {"compile.optimizer.momentum": {"choice": [0.5, 0.9]},
         "layers.1.rate": {"choice": [0.1, 0.3]}, "seed": {"choice": [1, 2]}},
        spec,
    )  # fmt: skip
    assert shape_groups(trials) == [list(range(8))]
    # Split by momentum; dropout rates and seeds stay together.
    assert program_groups(trials) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # A dropout layer that never drops has no seed generator: other state, another program.
    trials = trials_of({"layers.1.rate": {"choice": [0.0, 0.2, 0.3]}})
    assert shape_groups(trials) == [[0, 1, 2]]
    assert program_groups(trials) == [[0], [1, 2]]
    with pytest.raises(ValueError, match="cannot share one program"):
        train_group(trials, DATASET)


class StopAfter:
    """A GroupObserver that keeps every epoch's logs and asks to stop after `epochs`."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.seen: list[tuple[int, list[dict[str, float]]]] = []

    def on_epoch_end(self, epoch: int, logs: list[dict[str, float]]) -> None:
        self.seen.append((epoch, logs))

    def should_stop(self) -> bool:
        return len(self.seen) >= self.epochs


def test_the_observer_sees_every_trial_each_epoch_and_can_cancel() -> None:
    trials = trials_of({"seed": {"choice": [1, 2]}})
    observer = StopAfter(2)
    with pytest.raises(JobCancelled):
        train_group(trials, DATASET, observer)
    assert [epoch for epoch, _ in observer.seen] == [1, 2]
    for _, logs in observer.seen:
        assert len(logs) == 2
        assert all(
            sorted(trial) == ["accuracy", "loss", "val_accuracy", "val_loss"] for trial in logs
        )
