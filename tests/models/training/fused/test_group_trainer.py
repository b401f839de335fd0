"""Trials side by side (models.training.fused.group_trainer) against each trial
trained alone by the fused trainer: the vmapped program must end every trial
where it ends alone, its validation too, after one compilation for the whole
group; with folds, every (trial, fold) where that fold's rows end alone; with
halving, the stopped trials where they were at their rung."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from models.datasets import Dataset
from models.errors import JobCancelled
from models.training.fit import SilentObserver, TrainingResult, train
from models.training.fused.group_trainer import GroupResult, program_groups, train_group
from models.training.fused.trainer import model_values
from models.training.search.folds import fold_rows
from models.training.search.space import Halving, Search, Trial, shape_groups, trial_specs
from models.training.spec import ModelSpec
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
            (trainable, non_trainable, optimizer_values), model_values(single.model), strict=True
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
    # The group's one model was built for the first trial (all share its seed) ...
    assert group.model.layers[0].kernel.regularizer.l2 == 0.0
    # ... and a trial's result carries that trial's own factors.
    model = group.result(3).model
    assert model.layers[0].kernel.regularizer.get_config()["l2"] == 0.05
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
        self.seen: list[tuple[int, list[dict[str, float] | None]]] = []

    def on_epoch_end(self, epoch: int, logs: list[dict[str, float] | None]) -> None:
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
            sorted(trial or {}) == ["accuracy", "loss", "val_accuracy", "val_loss"]
            for trial in logs
        )


# --- k-fold validation ----------------------------------------------------------------

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
IRIS = Dataset(IRIS_X.astype("float32"), IRIS_Y)  # 150 rows: 5 folds of 120 training rows
CANCER_X, CANCER_Y = load_breast_cancer(return_X_y=True)
# 103 rows in 4 folds: 77 training rows in three, 78 in the fourth: two sizes in one program.
CANCER = Dataset(CANCER_X[:103].astype("float32"), CANCER_Y[:103])


def iris_spec() -> dict[str, Any]:
    """Normalized first, so each fold's model adapts to its own training rows;
    shuffled, so each fold's shuffle must match too."""
    return {
        "input_shape": [4],
        "layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "compile": {
            "loss": "sparse_categorical_crossentropy",
            "optimizer": {"name": "adam"},
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 3, "batch_size": 16, "shuffle": True},
        "seed": 0,
    }


def fold_alone(spec: ModelSpec, dataset: Dataset, folds: int, fold: int) -> TrainingResult:
    """One (trial, fold) trained alone by train(): the fold's training rows
    followed by its validation rows, with a validation_split that cuts exactly
    between them."""
    training, validation = fold_rows(len(dataset.x), folds)[fold]
    rows = np.concatenate([training, validation])
    split = (len(validation) - 0.5) / len(rows)  # rows * (1 - split) is half a row past the cut
    alone = spec.model_copy(update={"fit": spec.fit.model_copy(update={"validation_split": split})})
    assert alone.fit.training_rows(len(rows)) == len(training)
    return train(alone, Dataset(dataset.x[rows], dataset.y[rows]), SilentObserver(), fused=True)


def assert_fold_matches(
    group: GroupResult, position: int, fold: int, alone: TrainingResult
) -> None:
    """The group's logs of `fold` (0-based) of the trial at `position` are `alone`'s."""
    for name, values in alone.history.items():
        got = group.histories[position][f"f{fold + 1}:{name}"]
        np.testing.assert_allclose(
            got, values, rtol=0, atol=1e-5, err_msg=f"{position} {fold} {name}"
        )


@pytest.fixture(scope="module")
def five_folds() -> tuple[list[Trial], GroupResult]:
    trials = trials_of({"compile.optimizer.learning_rate": {"choice": [0.01, 0.05]}}, iris_spec())
    return trials, train_group(trials, IRIS, folds=5)


def test_every_fold_ends_where_it_ends_alone(
    five_folds: tuple[list[Trial], GroupResult],
) -> None:
    trials, group = five_folds
    assert group.traces == {"train": 1, "evaluate": 1}  # 120 training rows in every fold
    for fold in range(5):
        assert_fold_matches(group, 0, fold, fold_alone(trials[0].spec, IRIS, 5, fold))
    assert_fold_matches(group, 1, 2, fold_alone(trials[1].spec, IRIS, 5, 2))
    # The folds did differ: otherwise matching them proves little.
    assert len({round(group.histories[0][f"f{j}:val_loss"][-1], 6) for j in range(1, 6)}) == 5


def test_fold_logs_hold_the_fold_means_and_each_fold(
    five_folds: tuple[list[Trial], GroupResult],
) -> None:
    _, group = five_folds
    names = ["accuracy", "loss", "val_accuracy", "val_loss"]
    for position, history in enumerate(group.histories):
        assert sorted(history) == sorted(
            names + [f"f{fold}:{name}" for fold in range(1, 6) for name in names]
        )
        for name in names:
            folds = np.array([history[f"f{fold}:{name}"] for fold in range(1, 6)])
            np.testing.assert_allclose(history[name], folds.mean(axis=0), rtol=1e-6)
            summary = group.fold_metrics[position][name]  # type: ignore[index]
            assert summary["values"] == list(folds[:, -1])
            assert summary["mean"] == pytest.approx(history[name][-1])
            assert summary["std"] == pytest.approx(folds[:, -1].std())
    assert group.epochs_run == [3, 3] and group.stopped == [False, False]


def test_a_fold_group_has_no_one_model_to_return(
    five_folds: tuple[list[Trial], GroupResult],
) -> None:
    _, group = five_folds
    with pytest.raises(ValueError, match="5 models, one per fold.*Refit"):
        group.result(0)


def test_folds_of_two_training_sizes_train_in_one_program() -> None:
    spec = binary_spec()
    spec["input_shape"] = [30]
    spec["layers"].insert(0, {"type": "normalization"})
    spec["fit"] = {"epochs": 2, "batch_size": 16, "shuffle": False}
    trials = trials_of({"seed": {"choice": [3, 4]}}, spec)
    assert sorted({len(training) for training, _ in fold_rows(103, 4)}) == [77, 78]
    group = train_group(trials, CANCER, folds=4)
    # One training program; an evaluation for each validation size (26 rows, 25).
    assert group.traces == {"train": 1, "evaluate": 2}
    for position, fold in ((0, 0), (0, 3), (1, 3)):  # fold 4 is the one with 78 rows
        assert_fold_matches(
            group, position, fold, fold_alone(trials[position].spec, CANCER, 4, fold)
        )
    # Both sizes' folds are in each trial's logs.
    assert {name.split(":")[0] for name in group.histories[1] if ":" in name} == {
        "f1", "f2", "f3", "f4"
    }  # fmt: skip


@pytest.fixture(scope="module")
def refit_beside_folds() -> tuple[list[Trial], GroupResult]:
    """4 folds of iris: 112 and 113 training rows, a last partial batch of 2
    and of 3 rows at a batch size of 5; the refit's 150 rows have none. So
    the three sizes end at different steps of one program."""
    spec = iris_spec()
    spec["fit"].update(batch_size=5, epochs=2)
    trials = trials_of({"compile.optimizer.learning_rate": {"choice": [0.01, 0.03]}}, spec)
    assert sorted({len(training) for training, _ in fold_rows(150, 4)}) == [112, 113]
    return trials, train_group(trials, IRIS, folds=4, refit=True)


def test_a_refit_trains_beside_its_folds_and_ends_where_it_ends_alone(
    refit_beside_folds: tuple[list[Trial], GroupResult],
) -> None:
    trials, group = refit_beside_folds
    assert group.traces == {"train": 1, "evaluate": 2}  # one program, two validation sizes
    for position in (0, 1):
        alone = train(trials[position].spec, IRIS, SilentObserver(), fused=True)
        refit = group.result(position)
        assert sorted(refit.history) == ["accuracy", "loss"]  # every row trains: no validation
        for name, values in alone.history.items():
            np.testing.assert_allclose(refit.history[name], values, rtol=0, atol=1e-5,
                                       err_msg=f"{position} {name}")  # fmt: skip
        np.testing.assert_allclose(
            refit.model.predict(IRIS.x, verbose=0), alone.model.predict(IRIS.x, verbose=0),
            rtol=0, atol=1e-5,
        )  # fmt: skip
    # The folds train as they would without the refit beside them.
    for position, fold in ((0, 0), (0, 2), (1, 3)):
        assert_fold_matches(group, position, fold, fold_alone(trials[position].spec, IRIS, 4, fold))


def test_a_refits_logs_sit_beside_the_fold_means_and_do_not_rank(
    refit_beside_folds: tuple[list[Trial], GroupResult],
) -> None:
    _, group = refit_beside_folds
    history = group.histories[0]
    assert {name for name in history if name.startswith("refit:")} == {
        "refit:loss", "refit:accuracy"
    }  # fmt: skip
    assert group.fold_metrics[0] is not None and "refit:loss" not in group.fold_metrics[0]
    # The fold means are the folds' alone: the refit is not among them.
    folds = np.array([history[f"f{fold}:loss"] for fold in range(1, 5)])
    np.testing.assert_allclose(history["loss"], folds.mean(axis=0), rtol=1e-6)


def test_a_refit_needs_folds() -> None:
    with pytest.raises(ValueError, match="refit trains beside its trial's folds"):
        train_group(trials_of({"seed": {"choice": [1]}}), DATASET, refit=True)


def test_folds_refuse_a_validation_split() -> None:
    with pytest.raises(ValueError, match="validation_split"):
        train_group(trials_of({"seed": {"choice": [1]}}), DATASET, folds=3)


# --- successive halving ---------------------------------------------------------------


class Recorder:
    """A GroupObserver that keeps every epoch's logs."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, float] | None]] = []

    def on_epoch_end(self, epoch: int, logs: list[dict[str, float] | None]) -> None:
        assert epoch == len(self.seen) + 1
        self.seen.append(logs)

    def should_stop(self) -> bool:
        return False


RATES = [0.001, 0.01, 0.03, 0.1]


def test_halving_keeps_the_lowest_at_each_rung_and_stops_the_rest() -> None:
    trials = trials_of({"compile.optimizer.learning_rate": {"choice": RATES}})
    recorder = Recorder()
    group = train_group(
        trials, DATASET, recorder, halving=Halving(rungs=[1, 2], keep=0.5),
        ranking=("val_loss", "min"),
    )  # fmt: skip
    first = [logs["val_loss"] for logs in recorder.seen[0]]  # type: ignore[index]
    kept = sorted(np.argsort(first)[:2])  # ceil(0.5 * 4)
    assert [logs is not None for logs in recorder.seen[1]] == [p in kept for p in range(4)]
    second = {p: recorder.seen[1][p]["val_loss"] for p in kept}  # type: ignore[index]
    winner = min(second, key=second.__getitem__)  # ceil(0.5 * 2)
    assert [logs is not None for logs in recorder.seen[2]] == [p == winner for p in range(4)]
    assert group.epochs_run == [3 if p == winner else 2 if p in kept else 1 for p in range(4)]
    assert group.stopped == [p != winner for p in range(4)]
    for position, history in enumerate(group.histories):
        assert {len(values) for values in history.values()} == {group.epochs_run[position]}
    # One trace for each size of the stack: 4 trials, then 2, then 1.
    assert group.traces == {"train": 3, "evaluate": 3}
    # A trial stopped at the first rung is what training it alone for one epoch gives.
    stopped = next(p for p in range(4) if p not in kept)
    spec = trials[stopped].spec
    one_epoch = spec.model_copy(update={"fit": spec.fit.model_copy(update={"epochs": 1})})
    alone = train(one_epoch, DATASET, SilentObserver(), fused=True)
    result = group.result(stopped)
    assert result.epochs_run == 1
    for got, expected in zip(model_values(result.model), model_values(alone.model), strict=True):
        for got_value, expected_value in zip(got, expected, strict=True):
            np.testing.assert_allclose(got_value, expected_value, rtol=0, atol=1e-5)
    # The winner trained on alone after the rungs, still as it would alone.
    alone = train(trials[winner].spec, DATASET, SilentObserver(), fused=True)
    for name, values in alone.history.items():
        np.testing.assert_allclose(group.histories[winner][name], values, rtol=0, atol=1e-5)


def test_halving_keeps_the_highest_in_max_mode_rounding_up() -> None:
    rates = [0.001 * 1.6**power for power in range(10)]
    trials = trials_of({"compile.optimizer.learning_rate": {"choice": rates}})
    group = train_group(
        trials, DATASET, halving=Halving(rungs=[2], keep=0.3), ranking=("loss", "max")
    )
    at_rung = [history["loss"][1] for history in group.histories]
    kept = sorted(np.argsort(at_rung)[-3:])  # 0.3 * 10 is 3, not ceil(3.0000000000000004)
    assert [not stopped for stopped in group.stopped] == [p in kept for p in range(10)]
    assert group.epochs_run == [3 if p in kept else 2 for p in range(10)]


def test_halving_needs_a_metric_the_trials_log() -> None:
    with pytest.raises(ValueError, match="Received: 'val_auc'"):
        train_group(
            trials_of({"seed": {"choice": [1, 2]}}), DATASET,
            halving=Halving(rungs=[1], keep=0.5), ranking=("val_auc", "min"),
        )  # fmt: skip


def test_halving_ranks_folded_trials_by_their_fold_mean() -> None:
    trials = trials_of({"compile.optimizer.learning_rate": {"choice": [0.003, 0.03, 0.1]}},
                       iris_spec())  # fmt: skip
    recorder = Recorder()
    group = train_group(
        trials, IRIS, recorder, folds=3, halving=Halving(rungs=[1], keep=0.5),
        ranking=("val_loss", "min"),
    )  # fmt: skip
    means = [logs["val_loss"] for logs in recorder.seen[0]]  # type: ignore[index]
    kept = sorted(np.argsort(means)[:2])  # ceil(0.5 * 3)
    assert group.stopped == [p not in kept for p in range(3)]
    assert group.traces == {"train": 2, "evaluate": 2}  # 3 trials x 3 folds, then 2 x 3
    stopped = next(p for p in range(3) if p not in kept)
    assert recorder.seen[1][stopped] is None and recorder.seen[2][stopped] is None
    assert {len(values) for values in group.histories[stopped].values()} == {1}
    summary = group.fold_metrics[stopped]["val_loss"]  # type: ignore[index]
    assert summary["mean"] == pytest.approx(means[stopped])  # its last epoch: the rung's
    # The kept members, sliced out of the stack, go on as each fold does alone.
    assert_fold_matches(group, kept[-1], 1, fold_alone(trials[kept[-1]].spec, IRIS, 3, 1))
    assert group.epochs_run == [3 if p in kept else 1 for p in range(3)]


# --- checkpoints and resume -------------------------------------------------------------


class Checkpoints:
    """A CheckpointSink that keeps every checkpoint, round-tripped through the
    store's own file format, so resuming reads what a real store would give."""

    def __init__(self, folder: Any) -> None:
        from models.storage.blobs import FolderBlobs
        from models.storage.checkpoint_files import CheckpointStore

        self.store = CheckpointStore(FolderBlobs(folder))
        self.saved: dict[int, Any] = {}

    def offer(self, make: Any, final: bool) -> None:
        checkpoint = make()
        self.store.save("0" * 32, checkpoint)
        self.saved[checkpoint.epoch] = self.store.load("0" * 32)


@pytest.mark.parametrize(("folds", "refit"), [(None, False), (3, False), (3, True)])
def test_a_group_resumed_from_a_checkpoint_ends_where_it_would_have(
    folds: int | None, refit: bool, tmp_path: Any
) -> None:
    spec = binary_spec()
    spec["fit"].update(epochs=5, shuffle=True, validation_split=0.0 if folds else 0.2)
    trials = trials_of({"compile.optimizer.learning_rate": {"choice": RATES}}, spec)
    options = {"folds": folds, "halving": Halving(rungs=[2], keep=0.5),
               "ranking": ("val_loss", "min"), "refit": refit}  # fmt: skip
    whole = train_group(trials, DATASET, **options)  # type: ignore[arg-type]
    # Interrupted after epoch 3, past the rung: two trials stopped, two run.
    checkpoints = Checkpoints(tmp_path)
    with pytest.raises(JobCancelled):
        train_group(trials, DATASET, StopAfter(3), checkpoints=checkpoints, **options)  # type: ignore[arg-type]
    saved = checkpoints.saved[3]
    assert saved.extra["running"] == [
        position for position in range(4) if not whole.stopped[position]
    ]
    recorder = Recorder()
    recorder.seen = [[] for _ in range(3)]  # it carries on at epoch 4
    resumed = train_group(trials, DATASET, recorder, resume=saved, **options)  # type: ignore[arg-type]
    assert len(recorder.seen) == 5
    assert resumed.stopped == whole.stopped and resumed.epochs_run == whole.epochs_run
    for position in range(4):
        for name, values in whole.histories[position].items():
            np.testing.assert_allclose(resumed.histories[position][name], values, rtol=0,
                                       atol=1e-6, err_msg=f"{position} {name}")  # fmt: skip
    if folds is None:
        for position in range(4):  # the stopped ones' values at their rung too
            for got, want in zip(resumed.weights(position), whole.weights(position), strict=True):
                for a, b in zip(got, want, strict=True):
                    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    else:
        assert resumed.fold_metrics == whole.fold_metrics
    if refit:  # the refits of the trials that ran to the end
        running = [position for position in range(4) if not whole.stopped[position]]
        assert sorted(resumed.refit_states) == sorted(whole.refit_states) == running
        for position in running:
            for got, want in zip(resumed.weights(position), whole.weights(position), strict=True):
                for a, b in zip(got, want, strict=True):
                    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
