"""Fused training on JAX: one compiled call per epoch.

`model.fit` pays per step for slicing, copying and dispatching a batch and for
callbacks, most of the time for the small dense networks served here. Here the
data is placed on the device once and each epoch (shuffle, the full batches
under `lax.scan`, the last partial batch) is one jitted function of Keras'
stateless API, keeping what `fit` does: batch size, epochs, loss, a shuffle
per epoch, Keras' validation split, EarlyStopping, metrics as `fit` reports
them, progress per epoch. The program is models.training.fused.program's
`CompiledEpoch`; `_EpochLoop` here is the host's work between epochs. A
checkpoint carries the shuffle key too, so a resumed run ends with the same
weights as one never interrupted; the trained values go back into the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from models.errors import JobCancelled
from models.storage.checkpoint_files import Checkpoint
from models.training.checkpoints import capture, restore_callbacks
from models.training.fused.program import CompiledEpoch, DeviceData, compile_epoch
from models.training.spec import ModelSpec

Observer = Any  # models.training.fit.TrainingObserver (imported there; avoids a cycle)
History = dict[str, list[float]]


def fit_fused(
    model: Any, spec: ModelSpec, x: np.ndarray, y: np.ndarray, observer: Observer,
    callbacks: list[Any], resume: Checkpoint | None = None, checkpoints: Any = None,
) -> History:  # fmt: skip
    """Train `model` (its optimizer built, its variables restored when resuming)."""
    data = place_data(x, y, spec)
    compiled = compile_epoch(model, spec, len(data.x_train))
    return _EpochLoop(model, spec, observer, callbacks, checkpoints).run(compiled, data, resume)


def place_data(x: np.ndarray, y: np.ndarray, spec: ModelSpec) -> DeviceData:
    """The rows on the device, split into training and validation by `spec.fit`."""
    import jax.numpy as jnp

    split = spec.fit.training_rows(len(x))
    return DeviceData(jnp.asarray(x[:split]), jnp.asarray(y[:split]),
                      jnp.asarray(x[split:]), jnp.asarray(y[split:]))  # fmt: skip


@dataclass
class _EpochLoop:
    """Runs a CompiledEpoch epoch after epoch as `fit` would: history, Keras
    callbacks, the observer's progress and cancel, checkpoints."""

    model: Any
    spec: ModelSpec
    observer: Observer
    callbacks: list[Any]
    checkpoints: Any  # a CheckpointSink, or None
    history: History = field(default_factory=dict)

    def run(self, compiled: CompiledEpoch, data: DeviceData, resume: Checkpoint | None) -> History:
        import jax
        import keras

        state = model_values(self.model)
        seed = self.spec.seed if self.spec.seed is not None else np.random.randint(2**31)
        key = jax.random.PRNGKey(seed)
        callback_list = keras.callbacks.CallbackList(self.callbacks, model=self.model)
        self.model.stop_training = False
        callback_list.on_train_begin()
        first_epoch, key = self._resume(resume, key)
        for epoch_index in range(first_epoch, self.spec.fit.epochs):
            if self.model.stop_training:
                break  # a resumed run that early stopping had already ended
            key, epoch_key = jax.random.split(key)
            state, logs = compiled(state, epoch_key, data)
            self._end_epoch(epoch_index, state, logs, key, callback_list)
        callback_list.on_train_end()
        return self.history

    def _resume(self, resume: Checkpoint | None, key: Any) -> tuple[int, Any]:
        """The first epoch to run and the shuffle key; after `on_train_begin`,
        which resets the callbacks this restores."""
        import jax.numpy as jnp

        if resume is None:
            return 0, key
        restore_callbacks(self.model, resume, self.callbacks)
        self.history = {name: list(values) for name, values in resume.history.items()}
        if resume.shuffle_key is not None:
            key = jnp.asarray(resume.shuffle_key)
        return resume.epoch, key

    def _end_epoch(self, epoch_index: int, state: Any, logs: dict[str, float], key: Any,
                   callback_list: Any) -> None:  # fmt: skip
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)
        # Callbacks (and early stopping's best weights) see the model.
        assign_values(self.model, state)
        self.observer.on_epoch_end(epoch_index + 1, logs)
        callback_list.on_epoch_end(epoch_index, logs)
        if self.checkpoints is not None:
            self.checkpoints.offer(
                partial(capture, self.model, epoch_index + 1, self.history, self.callbacks, key),
                final=epoch_index + 1 == self.spec.fit.epochs or self.model.stop_training,
            )
        # After the checkpoint: a job stopped here resumes from this epoch.
        if self.observer.should_stop():
            raise JobCancelled("The job was cancelled while training.")


# --- between the two: metrics and the model's variables ------------------------------


def model_values(model: Any) -> Any:
    """The state the compiled epoch trains, read from the model (`assign_values` writes it back)."""
    return (
        [variable.value for variable in model.trainable_variables],
        [variable.value for variable in model.non_trainable_variables],
        [variable.value for variable in model.optimizer.variables],
    )


def assign_values(model: Any, state: Any) -> None:
    """Write a state (`model_values`' layout) back into the model's variables."""
    trainable, non_trainable, optimizer_state = state
    for variables, values in ((model.trainable_variables, trainable),
                              (model.non_trainable_variables, non_trainable),
                              (model.optimizer.variables, optimizer_state)):  # fmt: skip
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
