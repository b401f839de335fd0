"""Checkpoints: a run resumed from epoch k ends where an uninterrupted run ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from models.datasets import Dataset
from models.storage.blobs import FolderBlobs
from models.storage.checkpoint_files import Checkpoint, CheckpointStore
from models.training.builder import adapt, build_model
from models.training.checkpoints import Checkpointer, restore_variables
from models.training.fit import SilentObserver, TrainingResult, train
from models.training.spec import ModelSpec

GENERATOR = np.random.default_rng(8)
X = GENERATOR.normal(size=(90, 5)).astype("float32")
LABELS = np.where(X[:, 0] - X[:, 2] > 0, "up", "down")
JOB = "0123456789abcdef0123456789abcdef"


def spec(**fit: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "input_shape": [5],
            "layers": [
                {"type": "dense", "units": 12, "activation": "relu"},
                {"type": "dropout", "rate": 0.25},
                {"type": "batch_normalization"},
                {"type": "dense", "units": 1, "activation": "sigmoid"},
            ],
            "compile": {
                "loss": "binary_crossentropy",
                "optimizer": "adam",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 8, "batch_size": 8, "validation_split": 0.2, **fit},
            "seed": 3,
        }  # fmt: skip
    )


class EveryEpoch:
    """Keeps a checkpoint of every epoch."""

    def __init__(self) -> None:
        self.saved: list[Checkpoint] = []
        self.finals: list[bool] = []

    def offer(self, make: Callable[[], Checkpoint], final: bool) -> None:
        self.saved.append(make())
        self.finals.append(final)


def run(
    model_spec: ModelSpec, fused: bool | None = None, resume: Checkpoint | None = None
) -> tuple[TrainingResult, list[Checkpoint]]:
    sink = EveryEpoch()
    result = train(model_spec, Dataset(X, LABELS), SilentObserver(), fused=fused,
                   resume=resume, checkpoints=sink)  # fmt: skip
    assert sink.finals == [False] * (len(sink.finals) - 1) + [True] * bool(sink.finals)
    return result, sink.saved


def assert_same_run(resumed: TrainingResult, whole: TrainingResult, exact: bool) -> None:
    assert resumed.epochs_run == whole.epochs_run
    assert resumed.history.keys() == whole.history.keys()
    for name, curve in whole.history.items():
        np.testing.assert_allclose(resumed.history[name], curve, rtol=0 if exact else 1e-5)
    for got, want in zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True):
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the fused trainer is JAX's")
def test_fused_resume_gives_the_uninterrupted_weights() -> None:
    # Shuffled, with dropout and batch norm: the checkpoint must carry the
    # shuffle key, the dropout seed and the moving statistics as well.
    whole, checkpoints = run(spec(shuffle=True))
    assert [checkpoint.epoch for checkpoint in checkpoints] == list(range(1, 9))
    resumed, later = run(spec(shuffle=True), resume=checkpoints[2])
    assert [checkpoint.epoch for checkpoint in later] == list(range(4, 9))
    assert_same_run(resumed, whole, exact=True)


def test_fit_resume_gives_the_uninterrupted_weights() -> None:
    # Keras' `fit` draws its shuffle from a global generator that a
    # checkpoint cannot carry, so this compares unshuffled runs.
    whole, checkpoints = run(spec(shuffle=False), fused=False)
    resumed, _ = run(spec(shuffle=False), fused=False, resume=checkpoints[4])
    assert_same_run(resumed, whole, exact=False)


@pytest.mark.parametrize("fused", [None, False])
def test_resume_keeps_early_stopping_where_it_was(fused: bool | None) -> None:
    stopping = {"monitor": "loss", "patience": 1, "min_delta": 0.5,
                "restore_best_weights": True}  # fmt: skip
    model_spec = spec(shuffle=False, epochs=20, early_stopping=stopping)
    whole, checkpoints = run(model_spec, fused=fused)
    assert whole.epochs_run < 20  # it did stop early
    # From the middle: the patience counter and best weights carry over.
    resumed, _ = run(model_spec, fused=fused, resume=checkpoints[1])
    assert_same_run(resumed, whole, exact=False)
    # From the last checkpoint (the worker died while publishing): no epoch runs again.
    finished, more = run(model_spec, fused=fused, resume=checkpoints[-1])
    assert more == []
    assert_same_run(finished, whole, exact=False)


@pytest.mark.parametrize("fused", [None, False])
def test_resume_keeps_the_normalization_adapted_on_the_training_rows(fused: bool | None) -> None:
    data = spec(shuffle=False).model_dump()
    data["layers"].insert(0, {"type": "normalization"})
    model_spec = ModelSpec.model_validate(data)
    whole, checkpoints = run(model_spec, fused=fused)
    resumed, _ = run(model_spec, fused=fused, resume=checkpoints[3])
    assert_same_run(resumed, whole, exact=False)
    # Adapted on the 72 training rows (validation_split 0.2), resumed or not.
    norm = resumed.model.layers[0]
    np.testing.assert_allclose(norm.adapt_mean, X[:72].mean(axis=0), rtol=1e-5, atol=1e-7)


def test_restored_normalization_computes_with_the_checkpoint_statistics() -> None:
    data = spec(epochs=1).model_dump()
    data["layers"].insert(0, {"type": "normalization"})
    model_spec = ModelSpec.model_validate(data)
    _, (checkpoint,) = run(model_spec)
    model = build_model(model_spec)
    adapt(model, X * 100 + 7)  # other statistics, cached by the layer
    model.optimizer.build(model.trainable_variables)
    restore_variables(model, checkpoint)
    normalized = keras.ops.convert_to_numpy(model.layers[0](X[:72]))
    np.testing.assert_allclose(normalized.mean(axis=0), 0, atol=1e-5)


def test_a_checkpoint_of_another_network_is_refused() -> None:
    _, checkpoints = run(spec(epochs=1))
    other = ModelSpec.model_validate({
        **spec(epochs=2).model_dump(mode="json"),
        "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
    })  # fmt: skip
    with pytest.raises(ValueError, match="another network"):
        run(other, resume=checkpoints[0])


def test_store_round_trip_replace_and_delete(tmp_path: Path) -> None:
    store = CheckpointStore(FolderBlobs(tmp_path))
    assert store.load(JOB) is None
    stopping = {"monitor": "loss", "patience": 5, "restore_best_weights": True}
    _, checkpoints = run(spec(epochs=3, early_stopping=stopping))
    for checkpoint in checkpoints:
        store.save(JOB, checkpoint)  # each replaces the one before
    loaded = store.load(JOB)
    assert loaded is not None
    last = checkpoints[-1]
    assert loaded.epoch == 3 and loaded.history == last.history
    assert loaded.early_stopping == last.early_stopping
    assert last.best_weights is not None and loaded.best_weights is not None
    for group in ("trainable", "non_trainable", "optimizer", "best_weights"):
        for got, want in zip(getattr(loaded, group), getattr(last, group), strict=True):
            np.testing.assert_array_equal(got, want)
    assert store.job_ids() == [JOB]
    # No leftovers beside it.
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == [f"{JOB}.npz"]
    store.delete(JOB)
    assert store.load(JOB) is None and store.job_ids() == []


@pytest.mark.parametrize("job_id", ["../escape", "0123", "", "G" * 32, f"{JOB}/x", f"{JOB}\n"])
def test_store_refuses_names_that_are_not_job_ids(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        CheckpointStore(FolderBlobs(tmp_path)).load(job_id)


def test_checkpointer_keeps_saves_to_a_small_share_of_the_time(tmp_path: Path) -> None:
    store = CheckpointStore(FolderBlobs(tmp_path))
    checkpointer = Checkpointer(store, JOB, share=0.05)
    _, (checkpoint, *_) = run(spec(epochs=1))
    made = []

    def make() -> Checkpoint:
        made.append(1)
        time.sleep(0.02)  # what copying a model's values costs
        return checkpoint

    checkpointer.offer(make, final=False)  # the first is always due
    for _ in range(50):  # epochs far faster than twenty copies
        checkpointer.offer(make, final=False)
    assert len(made) == 1  # not even built while not due
    checkpointer.wait()  # written by a thread meanwhile
    assert store.load(JOB) is not None
    # Due again twenty times the copy (and the write) after it: waited out
    # by the checkpointer's own clock, however slow a loaded host made them.
    time.sleep(max(0.0, checkpointer.next_due - time.monotonic()) + 0.01)
    checkpointer.offer(make, final=False)
    checkpointer.offer(make, final=True)
    assert len(made) == 3 and checkpointer.saved == 3
    assert store.job_ids() == [JOB]
