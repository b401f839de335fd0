"""Training: fit the spec's network on a dataset, reporting every epoch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.datasets import Dataset
from models.errors import JobCancelled
from models.storage.checkpoint_files import Checkpoint
from models.training.builder import adapt, build_model
from models.training.checkpoints import capture, restore_callbacks, restore_variables
from models.training.class_labels import LabelEncoding
from models.training.fused.trainer import fit_fused
from models.training.spec import ModelSpec

if TYPE_CHECKING:
    import keras


class TrainingObserver(Protocol):
    """What a training run tells the outside world, and asks it."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...

    def should_stop(self) -> bool: ...


class SilentObserver:
    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class TrainingResult:
    model: keras.Model
    encoding: LabelEncoding
    history: dict[str, list[float]]
    metrics: dict[str, float]
    epochs_run: int
    fit_seconds: float
    samples: int = field(default=0)


class CheckpointSink(Protocol):
    """Where checkpoints go (models.training.checkpoints.Checkpointer): offered one
    after each epoch, it decides whether to build and keep it."""

    def offer(self, make: Callable[[], Checkpoint], final: bool) -> None: ...


def train(
    spec: ModelSpec, dataset: Dataset, observer: TrainingObserver, fused: bool | None = None,
    resume: Checkpoint | None = None, checkpoints: CheckpointSink | None = None,
    free_memory: bool = True,
) -> TrainingResult:  # fmt: skip
    """Fit the network of `spec` on `dataset`; raises JobCancelled when asked to stop.

    On JAX the fit is fused (models.training.fused.trainer: one compiled call per epoch) unless
    `fused` is False; other backends run Keras' `fit`. With `resume`, training
    goes on from that checkpoint's epoch; `checkpoints` is offered one after
    every epoch. `free_memory=False` skips the garbage collection that
    clearing Keras' session runs (a large share of a small job), for a
    caller that has just run one: a k-fold job's refit, after its folds.
    """
    import keras

    keras.backend.clear_session(free_memory=free_memory)
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    encoding = LabelEncoding.for_spec(spec, dataset.y)
    y = encoding.encode(dataset.y)
    model = build_model(spec)
    # Both trainers split as Keras does; a resumed run adapts to the same values
    # its checkpoint holds.
    adapt(model, dataset.x[: spec.fit.training_rows(len(dataset.x))])
    model.optimizer.build(model.trainable_variables)
    if resume is not None:
        restore_variables(model, resume)
    callbacks: list[keras.callbacks.Callback] = []
    if spec.fit.early_stopping is not None:
        stop = spec.fit.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stop.monitor,
                patience=stop.patience,
                min_delta=stop.min_delta,
                restore_best_weights=stop.restore_best_weights,
            )
        )
    if fused is None:
        fused = keras.backend.backend() == "jax"
    started = time.perf_counter()
    if fused:
        curves = fit_fused(model, spec, dataset.x, y, observer, callbacks, resume, checkpoints)
    else:
        curves = _fit(model, spec, dataset.x, y, observer, callbacks, resume, checkpoints)
    fit_seconds = time.perf_counter() - started
    return TrainingResult(
        model=model,
        encoding=encoding,
        history=curves,
        metrics={name: values[-1] for name, values in curves.items() if values},
        epochs_run=len(curves.get("loss", [])),
        fit_seconds=fit_seconds,
        samples=int(dataset.x.shape[0]),
    )


def warm_up() -> None:
    """Train a tiny network once, so a worker's first job does not pay for the
    backend's first compilations (initializers, optimizer, the fused loop)."""
    spec = ModelSpec.model_validate(
        {
            "input_shape": [2],
            "layers": [
                {"type": "dense", "units": 2, "activation": "relu"},
                {"type": "dense", "units": 1},
            ],
            "compile": {"loss": "mse", "optimizer": "adam"},
            "fit": {"epochs": 2, "batch_size": 2},
            "seed": 0,
        }  # fmt: skip
    )
    x = np.zeros((4, 2), dtype=np.float32)
    train(spec, Dataset(x, np.zeros(4, dtype=np.float32)), SilentObserver())


def _fit(
    model: keras.Model, spec: ModelSpec, x: np.ndarray, y: np.ndarray,
    observer: TrainingObserver, callbacks: list[keras.callbacks.Callback],
    resume: Checkpoint | None, checkpoints: CheckpointSink | None,
) -> dict[str, list[float]]:  # fmt: skip
    """Keras' own `fit`, with the observer and checkpoints as callbacks."""
    import keras

    curves = {name: list(values) for name, values in (resume.history if resume else {}).items()}
    if resume is not None and (resume.stop_training or resume.epoch >= spec.fit.epochs):
        # Nothing left to fit (the worker died while publishing), but the
        # callbacks' end must still run: early stopping restores the best weights there.
        finish = keras.callbacks.CallbackList(callbacks, model=model)
        finish.on_train_begin()
        restore_callbacks(model, resume, callbacks)
        finish.on_train_end()
        return curves
    # The checkpoint callback keeps the curves, the resumed epochs' included.
    model.fit(
        x,
        y,
        epochs=spec.fit.epochs,
        initial_epoch=resume.epoch if resume else 0,
        batch_size=spec.fit.batch_size,
        validation_split=spec.fit.validation_split,
        shuffle=spec.fit.shuffle,
        callbacks=[
            _observer_callback(observer),
            *callbacks,
            # Last: it saves what early stopping decided this epoch.
            _checkpoint_callback(curves, callbacks, resume, checkpoints, spec.fit.epochs),
        ],
        verbose=0,
    )
    return curves


def _checkpoint_callback(
    curves: dict[str, list[float]], callbacks: list[Any], resume: Checkpoint | None,
    checkpoints: CheckpointSink | None, epochs: int,
) -> keras.callbacks.Callback:  # fmt: skip
    import keras

    class CheckpointCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            if resume is not None:
                restore_callbacks(self.model, resume, callbacks)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            for name, value in _floats(logs or {}).items():
                curves.setdefault(name, []).append(value)
            if checkpoints is not None:
                checkpoints.offer(
                    lambda: capture(self.model, epoch + 1, curves, callbacks),
                    final=epoch + 1 == epochs or bool(self.model.stop_training),
                )

    return CheckpointCallback()


def _observer_callback(observer: TrainingObserver) -> keras.callbacks.Callback:
    """A Keras callback that reports to `observer` (defined here: keras is imported late)."""
    import keras

    class ObserverCallback(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            # A batch boundary: the cancel point API.md promises.
            if observer.should_stop():
                raise JobCancelled("The job was cancelled while training.")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            observer.on_epoch_end(epoch + 1, _floats(logs or {}))

    return ObserverCallback()


def _floats(logs: dict[str, Any]) -> dict[str, float]:
    return {name: float(np.asarray(value)) for name, value in logs.items()}
