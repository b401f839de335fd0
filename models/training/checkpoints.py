"""Training checkpoints: what a job needs to go on from its last finished epoch
after its worker died.

A checkpoint holds every variable of the model and its optimizer, the epoch
count, the curves so far, early stopping's state and the fused trainer's
shuffle key; resuming from it on JAX gives the weights of an uninterrupted
run. The files are the storage room's (models.storage.checkpoint_files);
this module decides when to save and moves values between a Keras model and
a Checkpoint. Saving costs a copy of every variable, so a job saves after an
epoch only when training since its last save took at least twenty times that
copy: at most about 5% of the time goes to checkpoints, and slow epochs are
all saved. The last epoch always is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from models.storage.checkpoint_files import Checkpoint, CheckpointStore

log = logging.getLogger(__name__)

# The early-stopping attributes that carry from one epoch to the next.
EARLY_STOPPING_STATE = ("wait", "stopped_epoch", "best", "best_epoch")


class Checkpointer:
    """Saves one job's checkpoints, when they are due (see above).

    Training waits only for the copy of the values; the file is written by a
    thread meanwhile. A checkpoint that arrives while one is being written
    replaces any still waiting, so the newest is written next and none piles
    up. The last one (and one asked for by a stopping worker) is written before
    `offer` returns, after any still in flight, so nothing older lands on top.
    """

    def __init__(
        self, store: CheckpointStore, job_id: str, share: float = 0.05,
        force: threading.Event | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.job_id = job_id
        self.share = share
        # Set when the worker is stopping: the job's next epoch is saved, whatever it costs.
        self.force = force or threading.Event()
        self.saved = 0
        self._next = 0.0
        # How long the last write took: a bucket's round trips count against
        # the share as the copy does (the write runs on a thread, but it
        # costs the store, and checkpoints wait behind it).
        self._write_s = 0.0
        self._writer = _LatestWriter(self._save)

    def _save(self, checkpoint: Checkpoint) -> None:
        started = time.monotonic()
        self.store.save(self.job_id, checkpoint)
        self._write_s = time.monotonic() - started

    def offer(self, make: Callable[[], Checkpoint], final: bool) -> None:
        """After an epoch: save `make()` if it is the last epoch or one is due."""
        started = time.monotonic()
        urgent = final or self.force.is_set()
        if not urgent and started < self._next:
            return
        checkpoint = make()
        self.saved += 1
        if urgent:
            self._writer.wait()
            self._save(checkpoint)
        else:
            self._writer.submit(checkpoint)
        finished = time.monotonic()
        self._next = finished + (finished - started + self._write_s) / self.share

    def wait(self) -> None:
        """Until every checkpoint offered so far is on disk."""
        self._writer.wait()

    @property
    def next_due(self) -> float:
        """When (time.monotonic()) an epoch's checkpoint is next due."""
        return self._next


class _LatestWriter:
    """Writes items on a thread of its own, the newest first, dropping any
    that a newer one replaced before its turn."""

    def __init__(self, write: Callable[[Checkpoint], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._waiting: Checkpoint | None = None
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, item: Checkpoint) -> None:
        with self._lock:
            self._waiting = item
            if not self._idle.is_set():
                return  # the running thread takes it next
            self._idle.clear()
        threading.Thread(target=self._run, name="checkpoint-writer", daemon=True).start()

    def wait(self) -> None:
        self._idle.wait()

    def _run(self) -> None:
        while True:
            with self._lock:
                item, self._waiting = self._waiting, None
                if item is None:
                    self._idle.set()
                    return
            try:
                self._write(item)
            except Exception:  # a lost checkpoint costs a resume some epochs, no more
                log.exception("could not write a checkpoint")


def capture(
    model: Any, epoch: int, history: dict[str, list[float]], callbacks: list[Any],
    shuffle_key: Any = None,
) -> Checkpoint:  # fmt: skip
    """The state of `model` (variables already current) after `epoch` epochs."""
    from keras import ops

    def values(variables: list[Any]) -> list[np.ndarray]:
        return [ops.convert_to_numpy(variable.value) for variable in variables]

    stopper = _early_stopping(callbacks)
    state = {} if stopper is None else {name: _plain(getattr(stopper, name, None))
                                        for name in EARLY_STOPPING_STATE}  # fmt: skip
    best = None if stopper is None else getattr(stopper, "best_weights", None)
    return Checkpoint(
        epoch=epoch,
        history={name: list(curve) for name, curve in history.items()},
        trainable=values(model.trainable_variables),
        non_trainable=values(model.non_trainable_variables),
        optimizer=values(model.optimizer.variables),
        stop_training=bool(model.stop_training),
        early_stopping=state,
        best_weights=None if best is None else [np.asarray(weight) for weight in best],
        shuffle_key=None if shuffle_key is None else np.asarray(shuffle_key),
    )


def restore_variables(model: Any, checkpoint: Checkpoint) -> None:
    """Put the checkpoint's values into `model` and its (built) optimizer."""
    for variables, values in ((model.trainable_variables, checkpoint.trainable),
                              (model.non_trainable_variables, checkpoint.non_trainable),
                              (model.optimizer.variables, checkpoint.optimizer)):  # fmt: skip
        if len(variables) != len(values):
            raise ValueError(
                f"The checkpoint holds {len(values)} values where the model has "
                f"{len(variables)} variables: it belongs to another network."
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
    _refresh_normalization(model)


def restore_callbacks(model: Any, checkpoint: Checkpoint, callbacks: list[Any]) -> None:
    """After `on_train_begin` (which resets them): early stopping's counters."""
    stopper = _early_stopping(callbacks)
    if stopper is not None:
        for name, value in checkpoint.early_stopping.items():
            setattr(stopper, name, value)
        stopper.best_weights = checkpoint.best_weights
    model.stop_training = checkpoint.stop_training


def _refresh_normalization(model: Any) -> None:
    """Keras' Normalization computes with tensors it caches from its mean and
    variance when adapted or loaded, not when they are assigned: recache them,
    so the checkpoint's statistics are the ones used."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()


def _early_stopping(callbacks: list[Any]) -> Any:
    import keras

    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping):
            return callback
    return None


def _plain(value: Any) -> Any:
    """A JSON-able form of an early-stopping attribute (numpy and backend scalars)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    return float(np.asarray(value))
