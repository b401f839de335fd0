"""Fused training on JAX: one compiled call per epoch.

`model.fit` pays per step for slicing the batch on the host, copying it to
the device, dispatching the step and running callbacks; for the small dense
networks of this service that overhead is most of the time. Here the data is
placed on the device once, and each epoch (shuffle, every full batch under
`lax.scan`, then the last partial batch) is a single jitted function built from
Keras' stateless API (`stateless_call`, `optimizer.stateless_apply`, metrics'
`stateless_update_state`). What the user asked for is kept: batch size, epochs,
loss, a new shuffle each epoch, validation split (Keras' rule: the last
fraction, before shuffling), Keras' own EarlyStopping, metrics reported as
`fit` reports them, and progress after every epoch. The trained values are
assigned back to the model, which saves as `.keras` as usual.

A checkpoint after each epoch carries the shuffle key too, so a run resumed
from one gives the same weights as a run never interrupted.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from models.errors import JobCancelled
from models.storage.checkpoints import Checkpoint
from models.training.backend import FULL_OPTIMIZATION
from models.training.checkpoints import capture, restore_callbacks
from models.training.spec import ModelSpec

Observer = Any  # models.training.TrainingObserver (imported there; avoids a cycle)


def fit_fused(
    model: Any, spec: ModelSpec, x: np.ndarray, y: np.ndarray, observer: Observer,
    callbacks: list[Any], resume: Checkpoint | None = None, checkpoints: Any = None,
) -> dict[str, list[float]]:  # fmt: skip
    """Train `model` (its optimizer built, its variables restored when resuming)."""
    import jax
    import jax.numpy as jnp
    import keras

    split = len(x)
    if spec.fit.validation_split:
        split = int(math.floor(len(x) * (1.0 - spec.fit.validation_split)))
    x_train, y_train = jnp.asarray(x[:split]), jnp.asarray(y[:split])
    x_val, y_val = jnp.asarray(x[split:]), jnp.asarray(y[split:])
    batch_size = min(spec.fit.batch_size, split)
    full_batches, rest = divmod(split, batch_size)

    loss_function = keras.losses.get(spec.compile.loss)
    metrics = [_metric(name, spec) for name in spec.compile.metrics]

    def step(state: Any, batch: Any) -> Any:
        trainable, non_trainable, optimizer_state, totals = state
        x_batch, y_batch = batch

        def loss_of(trainable: Any, non_trainable: Any) -> Any:
            y_pred, non_trainable, losses = model.stateless_call(
                trainable, non_trainable, x_batch, training=True, return_losses=True
            )
            loss = jnp.mean(loss_function(y_batch, y_pred)) + sum(losses)
            return loss, (y_pred, non_trainable)

        (loss, (y_pred, non_trainable)), grads = jax.value_and_grad(loss_of, has_aux=True)(
            trainable, non_trainable
        )
        trainable, optimizer_state = model.optimizer.stateless_apply(
            optimizer_state, grads, trainable
        )
        size = x_batch.shape[0]
        totals = _accumulate(totals, loss * size, size, metrics, y_batch, y_pred)
        return (trainable, non_trainable, optimizer_state, totals), None

    # The data goes in as arguments, not closed over: a closed-over array is
    # baked into the program as a constant, so every dataset (even one of the
    # same shape) was a new program to compile and to keep in the compilation
    # cache, and compiling grew with the data (MNIST's rows: 188 MB of HLO).
    def epoch(state: Any, key: Any, x_train: Any, y_train: Any) -> Any:
        order = jax.random.permutation(key, split) if spec.fit.shuffle else jnp.arange(split)
        xs, ys = x_train[order], y_train[order]
        state = (*state, _zero_totals(metrics))
        if full_batches:
            cut = full_batches * batch_size
            batched = (xs[:cut].reshape(full_batches, batch_size, *xs.shape[1:]),
                       ys[:cut].reshape(full_batches, batch_size, *ys.shape[1:]))  # fmt: skip
            state, _ = jax.lax.scan(step, state, batched)
        if rest:  # Keras trains on the last partial batch too
            state, _ = step(state, (xs[-rest:], ys[-rest:]))
        *weights, totals = state
        return tuple(weights), _results(totals, metrics, split)

    def evaluate(trainable: Any, non_trainable: Any, x_val: Any, y_val: Any) -> Any:
        y_pred, _, losses = model.stateless_call(
            trainable, non_trainable, x_val, training=False, return_losses=True
        )
        size = x_val.shape[0]
        loss = jnp.mean(loss_function(y_val, y_pred)) + sum(losses)
        totals = _accumulate(_zero_totals(metrics), loss * size, size, metrics, y_val, y_pred)
        return _results(totals, metrics, size)

    # Fully optimized whatever the process default (models.training.backend): these
    # run every epoch, unlike the eager ops of the model's set-up.
    run_epoch = jax.jit(epoch, compiler_options=FULL_OPTIMIZATION)
    run_evaluate = jax.jit(evaluate, compiler_options=FULL_OPTIMIZATION)
    state = (
        [variable.value for variable in model.trainable_variables],
        [variable.value for variable in model.non_trainable_variables],
        [variable.value for variable in model.optimizer.variables],
    )
    key = jax.random.PRNGKey(spec.seed if spec.seed is not None else np.random.randint(2**31))
    history: dict[str, list[float]] = {}
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    first_epoch = 0
    if resume is not None:
        restore_callbacks(model, resume, callbacks)
        history = {name: list(values) for name, values in resume.history.items()}
        first_epoch = resume.epoch
        if resume.shuffle_key is not None:
            key = jnp.asarray(resume.shuffle_key)
    for epoch_index in range(first_epoch, spec.fit.epochs):
        if model.stop_training:
            break  # a resumed run that early stopping had already ended
        key, epoch_key = jax.random.split(key)
        state, train_logs = run_epoch(state, epoch_key, x_train, y_train)
        logs = {name: float(value) for name, value in train_logs.items()}
        if len(x_val):
            val_logs = run_evaluate(state[0], state[1], x_val, y_val)
            logs.update({f"val_{name}": float(value) for name, value in val_logs.items()})
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
        _assign(model, state)  # callbacks (and early stopping's best weights) see the model
        observer.on_epoch_end(epoch_index + 1, logs)
        callback_list.on_epoch_end(epoch_index, logs)
        if checkpoints is not None:  # a CheckpointSink
            checkpoints.offer(
                partial(capture, model, epoch_index + 1, history, callbacks, key),
                final=epoch_index + 1 == spec.fit.epochs or model.stop_training,
            )
        # After the checkpoint: a job stopped here resumes from this epoch.
        if observer.should_stop():
            raise JobCancelled("The job was cancelled while training.")
    callback_list.on_train_end()
    return history


def _metric(name: str, spec: ModelSpec) -> Any:
    """The Keras metric object that `compile(metrics=[name])` would use."""
    import keras

    if name == "accuracy":
        if spec.task == "binary":
            return keras.metrics.BinaryAccuracy(name=name)
        if spec.compile.loss == "sparse_categorical_crossentropy":
            return keras.metrics.SparseCategoricalAccuracy(name=name)
        return keras.metrics.CategoricalAccuracy(name=name)
    found = keras.metrics.get(name)
    # Named as the user spelled it ("mae", not "mean_absolute_error"), as fit logs it.
    if isinstance(found, keras.metrics.Metric):
        return type(found)(name=name)
    if isinstance(found, type):
        return found(name=name)
    return keras.metrics.MeanMetricWrapper(found, name=name)


def _zero_totals(metrics: list[Any]) -> Any:
    import jax.numpy as jnp

    return (
        jnp.float32(0),
        [[variable.value for variable in metric.variables] for metric in metrics],
    )


def _accumulate(totals: Any, weighted_loss: Any, size: int, metrics: list[Any], y_true: Any,
                y_pred: Any) -> Any:  # fmt: skip
    loss_sum, metric_states = totals
    updated = [
        metric.stateless_update_state(state, y_true, y_pred)
        for metric, state in zip(metrics, metric_states, strict=True)
    ]
    return loss_sum + weighted_loss, updated


def _results(totals: Any, metrics: list[Any], count: int) -> dict[str, Any]:
    loss_sum, metric_states = totals
    results = {"loss": loss_sum / count}
    for metric, state in zip(metrics, metric_states, strict=True):
        results[metric.name] = metric.stateless_result(state)
    return results


def _assign(model: Any, state: Any) -> None:
    trainable, non_trainable, optimizer_state = state
    for variables, values in ((model.trainable_variables, trainable),
                              (model.non_trainable_variables, non_trainable),
                              (model.optimizer.variables, optimizer_state)):  # fmt: skip
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
