"""Training: fit the spec's network on a dataset, reporting every epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.builder import build_model
from models.datasets import Dataset
from models.errors import JobCancelled
from models.fused import fit_fused
from models.labels import LabelEncoding
from models.spec import ModelSpec

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


def train(
    spec: ModelSpec, dataset: Dataset, observer: TrainingObserver, fused: bool | None = None
) -> TrainingResult:
    """Fit the network of `spec` on `dataset`; raises JobCancelled when asked to stop.

    On JAX the fit is fused (models.fused: one compiled call per epoch) unless
    `fused` is False; other backends run Keras' `fit`.
    """
    import keras

    keras.backend.clear_session()
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    encoding = LabelEncoding.for_spec(spec, dataset.y)
    y = encoding.encode(dataset.y)
    model = build_model(spec)
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
        curves = fit_fused(model, spec, dataset.x, y, observer, callbacks)
    else:
        history = model.fit(
            dataset.x,
            y,
            epochs=spec.fit.epochs,
            batch_size=spec.fit.batch_size,
            validation_split=spec.fit.validation_split,
            shuffle=spec.fit.shuffle,
            callbacks=[_observer_callback(observer), *callbacks],
            verbose=0,
        )
        curves = {name: [float(value) for value in values]
                  for name, values in history.history.items()}  # fmt: skip
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
