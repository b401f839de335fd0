"""The fused trainer's program: one epoch as jitted JAX functions, pure and
stateless, built from Keras' stateless API (`stateless_call`,
`optimizer.stateless_apply`, metrics' `stateless_update_state`).

The data and the weights are arguments, never closed over: JAX would bake a
closed-over array into the program as a constant, and the program would then
depend on the data and grow with it. As arguments, a program depends on the
shapes alone, so a dataset of a known size finds it compiled. The host side
(callbacks, progress, checkpoints) is models.training.fused.trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from models.training.backend import FULL_OPTIMIZATION
from models.training.spec import ModelSpec


@dataclass(frozen=True)
class DeviceData:
    """The dataset on the device, split as Keras splits it: the last fraction
    validates, cut before any shuffling."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any


@dataclass(frozen=True)
class CompiledEpoch:
    """One epoch as two jitted programs, which depend on shapes only: the data
    and the weights (`state`: trainable, non-trainable, optimizer values) are
    their arguments."""

    train: Any  # (state, key, x_train, y_train) -> (state, training logs)
    evaluate: Any  # (trainable, non_trainable, x_val, y_val) -> validation logs

    def __call__(self, state: Any, key: Any, data: DeviceData) -> tuple[Any, dict[str, float]]:
        """Train one epoch, then validate; logs named as `fit` names them."""
        state, train_logs = self.train(state, key, data.x_train, data.y_train)
        logs = {name: float(value) for name, value in train_logs.items()}
        if len(data.x_val):
            val_logs = self.evaluate(state[0], state[1], data.x_val, data.y_val)
            logs.update({f"val_{name}": float(value) for name, value in val_logs.items()})
        return state, logs


def compile_epoch(model: Any, spec: ModelSpec, rows: int) -> CompiledEpoch:
    """The epoch for `rows` training rows (compiled on its first call)."""
    import jax

    epoch, evaluate = epoch_functions(model, spec, rows)
    # Fully optimized whatever the process default (models.training.backend): these
    # run every epoch, unlike the eager ops of the model's set-up.
    return CompiledEpoch(
        train=jax.jit(epoch, compiler_options=FULL_OPTIMIZATION),
        evaluate=jax.jit(evaluate, compiler_options=FULL_OPTIMIZATION),
    )


def epoch_functions(model: Any, spec: ModelSpec, rows: int) -> tuple[Any, Any]:
    """The epoch's two functions before `jax.jit`: CompiledEpoch's `train` and
    `evaluate`. models.training.fused.group_trainer vmaps these same functions over
    trials, so a trial trained in a group runs this arithmetic too."""
    import keras

    loss_function = keras.losses.get(spec.compile.loss)
    metrics = [_metric(name, spec) for name in spec.compile.metrics]
    step = _train_step(model, loss_function, metrics)
    epoch = _epoch(step, metrics, rows, min(spec.fit.batch_size, rows), spec.fit.shuffle)
    return epoch, _evaluation(model, loss_function, metrics)


def member_epoch_functions(model: Any, spec: ModelSpec, sizes: Sequence[int]) -> tuple[Any, Any]:
    """`epoch_functions` for members that train on different numbers of rows
    (models.training.fused.group_trainer: folds of two sizes, and the refit on every
    row, side by side in one program).

    `epoch(state, order, slot, row_index, x, y)`: the member trains on the
    rows `row_index[:sizes[slot]]` of x and y (`row_index` padded to the
    largest size) exactly as `_epoch` trains on those rows alone: in the
    order `member_orders` draws from the key `_epoch` would take, the same
    batches, the same steps in the same order. Every
    member runs the longest member's full batches; a step past a member's own
    last full batch leaves its state as it was (a select, exact), and each
    size's last partial batch is a step of its own, taken by that size's
    members only. `evaluate` is `epoch_functions`'. Every size must have the
    same batch size (`min(batch_size, size)`)."""
    import keras

    batch_sizes = {min(spec.fit.batch_size, size) for size in sizes}
    if len(batch_sizes) != 1:
        raise ValueError(
            f"Members side by side take batches of one size. Received: sizes={list(sizes)}, "
            f"batch_size={spec.fit.batch_size}"
        )
    loss_function = keras.losses.get(spec.compile.loss)
    metrics = [_metric(name, spec) for name in spec.compile.metrics]
    step = _train_step(model, loss_function, metrics)
    epoch = _member_epoch(step, metrics, tuple(sizes), batch_sizes.pop())
    return epoch, _evaluation(model, loss_function, metrics)


def _train_step(model: Any, loss_function: Any, metrics: list[Any]) -> Any:
    """One batch: gradients, the optimizer's update, the running totals."""
    import jax
    import jax.numpy as jnp

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

    return step


def _epoch(step: Any, metrics: list[Any], rows: int, batch_size: int, shuffle: bool) -> Any:
    """Shuffle, every full batch under `lax.scan`, then the last partial batch."""
    import jax
    import jax.numpy as jnp

    full_batches, rest = divmod(rows, batch_size)

    # The data goes in as arguments, not closed over: a closed-over array is
    # baked into the program as a constant, so every dataset (even one of the
    # same shape) was a new program to compile and to keep in the compilation
    # cache, and compiling grew with the data (MNIST's rows: 188 MB of HLO).
    def epoch(state: Any, key: Any, x_train: Any, y_train: Any) -> Any:
        order = jax.random.permutation(key, rows) if shuffle else jnp.arange(rows)
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
        return tuple(weights), _results(totals, metrics, rows)

    return epoch


def _member_epoch(step: Any, metrics: list[Any], sizes: tuple[int, ...], batch_size: int) -> Any:
    """`_epoch` for a member of any of `sizes`, its size chosen by `slot`."""
    import jax
    import jax.numpy as jnp

    most_batches = max(size // batch_size for size in sizes)

    def epoch(state: Any, order: Any, slot: Any, row_index: Any, x: Any, y: Any) -> Any:
        rows = row_index[order]
        xs, ys = x[rows], y[rows]
        state = (*state, _zero_totals(metrics))
        own_batches = jnp.asarray([size // batch_size for size in sizes], "int32")[slot]

        def masked_step(carry: Any, batch: Any) -> Any:
            state, index = carry
            stepped, _ = step(state, batch)
            return (_chosen(index < own_batches, stepped, state), index + 1), None

        if most_batches:
            cut = most_batches * batch_size
            batched = (xs[:cut].reshape(most_batches, batch_size, *xs.shape[1:]),
                       ys[:cut].reshape(most_batches, batch_size, *ys.shape[1:]))  # fmt: skip
            (state, _), _ = jax.lax.scan(masked_step, (state, jnp.int32(0)), batched)
        for index, size in enumerate(sizes):
            rest = size % batch_size
            if rest:  # this size's last partial batch, as Keras trains it
                stepped, _ = step(state, (xs[size - rest : size], ys[size - rest : size]))
                state = _chosen(slot == index, stepped, state)
        *weights, totals = state
        return tuple(weights), _results(totals, metrics, jnp.asarray(sizes, "int32")[slot])

    return epoch


@cache
def member_orders(sizes: tuple[int, ...], shuffle: bool) -> Any:
    """(keys, slots) -> each member's order of its rows for an epoch of
    `member_epoch_functions`, drawn as `_epoch` draws it for the member's
    size (`permutation(key, size)`), padded to the largest size.

    A program of its own, compiled once a process for these sizes: drawn
    inside the epoch's program, the permutations (one per size, each
    member drawing all) were traced and lowered again by every job, and
    lowering the random bits' generator is slow (bench/RESULTS.md)."""
    import jax
    import jax.numpy as jnp

    longest = max(sizes)

    def order_of(key: Any, slot: Any) -> Any:
        order = jnp.zeros(longest, "int32")
        for index, size in enumerate(sizes):
            own = jax.random.permutation(key, size) if shuffle else jnp.arange(size)
            order = jnp.where(slot == index, jnp.pad(own, (0, longest - size)), order)
        return order

    return jax.jit(jax.vmap(order_of))


def _chosen(condition: Any, if_true: Any, if_false: Any) -> Any:
    """Leaf by leaf, `if_true` where `condition` holds, else `if_false` (exact)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), if_true, if_false)


def _evaluation(model: Any, loss_function: Any, metrics: list[Any]) -> Any:
    """The validation rows in one batch, as `fit` reports them."""
    import jax.numpy as jnp

    def evaluate(trainable: Any, non_trainable: Any, x_val: Any, y_val: Any) -> Any:
        y_pred, _, losses = model.stateless_call(
            trainable, non_trainable, x_val, training=False, return_losses=True
        )
        size = x_val.shape[0]
        loss = jnp.mean(loss_function(y_val, y_pred)) + sum(losses)
        totals = _accumulate(_zero_totals(metrics), loss * size, size, metrics, y_val, y_pred)
        return _results(totals, metrics, size)

    return evaluate


# --- the loop: on the host, between epochs -------------------------------------------


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


def _results(totals: Any, metrics: list[Any], count: Any) -> dict[str, Any]:
    loss_sum, metric_states = totals
    results = {"loss": loss_sum / count}
    for metric, state in zip(metrics, metric_states, strict=True):
        results[metric.name] = metric.stateless_result(state)
    return results
