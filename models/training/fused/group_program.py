"""The program a group of trials trains in: the single-trial fused epoch
(models.training.fused.program), vmapped over members (a trial, or a trial's
fold or refit), with the hyperparameters Keras reads as Python floats made
per-member inputs. models.training.fused.group_trainer runs it, epoch after epoch.

What is per trial by a substitution while the program is traced
(`_traced_hyperparameters`; Keras reads these as Python floats and branches
on them, `if training and self.rate > 0`, `if self.l1 != 0.0`, so a traced
value cannot simply be assigned):

- a dropout layer's rate: the layer's `call` is replaced (an instance
  attribute, removed right after tracing, so the saved model is plain Keras)
  by the arithmetic of Keras' JAX dropout with the rate a per-trial input.
  Zero against non-zero still splits a group: Keras gives a dropout layer a
  seed generator (state) only for a rate above zero.
- a dense layer's kernel_regularizer l1 and l2: the kernel variable's
  `regularizer` is replaced likewise by L1L2's arithmetic with both factors
  per-trial inputs (a zero factor adds an exact zero where Keras skips the
  term). Having a regularizer or not still splits (shape_groups does).
- the optimizer's weight_decay: the optimizer's `weight_decay` attribute is
  the per-trial value while tracing (Keras' `_apply_weight_decay` only asks
  whether it is None, then casts it). A trial without weight decay (None)
  beside one with it decays by an exact zero.

With k-fold validation each member's normalization layer is adapted on its
own fold; Keras' `call` reads the adapted mean and variance as constant
tensors, so they are remade from the member's traced state while tracing
(`_adapted_per_member`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

from models.training.backend import FULL_OPTIMIZATION
from models.training.fused.program import epoch_functions, member_epoch_functions
from models.training.search.space import Trial
from models.training.spec import DenseLayer, DropoutLayer, ModelSpec, NormalizationLayer

# Per member, the rows it validates on: (which members take these logs, the data).
Validations = list[tuple[np.ndarray, tuple[Any, ...]]]


@cache
def split_each_key() -> Callable[[Any], tuple[Any, Any]]:
    """keys -> (next keys, epoch keys): `jax.random.split` of each key of a
    stack, compiled once a process. An eager `vmap` traces again on every
    call: 1.7 ms an epoch on a 2-core host, 85 ms of a 50-epoch k-fold job."""
    import jax

    def split(keys: Any) -> tuple[Any, Any]:
        both = jax.vmap(jax.random.split)(keys)
        return both[:, 0], both[:, 1]

    return jax.jit(split)


class GroupProgram:
    """CompiledEpoch's two programs, vmapped over the leading member axis of
    the state and the keys (with folds of several sizes, each member's order
    of its rows instead: fused_program.member_orders draws them). The data
    is shared; with `folded`, each member also takes its row indices into it
    and gathers its rows in the program."""

    def __init__(
        self, model: Any, spec: ModelSpec, sizes: tuple[int, ...], folded: bool,
        traces: dict[str, int] | None = None,
    ) -> None:  # fmt: skip
        import jax

        several = folded and len(sizes) > 1  # members of several training sizes
        if several:
            epoch, evaluate = member_epoch_functions(model, spec, sizes)
        else:
            epoch, evaluate = epoch_functions(model, spec, sizes[0])
        self.arguments = (model, spec, sizes, folded)
        self.sizes = sizes
        self.shuffle = spec.fit.shuffle
        self.folded = folded
        # How many of the training data's arrays are per member (the rest are
        # shared): with folds, the row indices, and each member's size slot
        # when there are several sizes.
        self.member_arrays = 2 if several else 1 if folded else 0
        self.traces = traces if traces is not None else {"train": 0, "evaluate": 0}
        # Spec indices (model.layers follows spec.layers) of the layers whose
        # hyperparameters are per-trial inputs: dropout that drops, regularized dense.
        self.dropout_layers = [
            index
            for index, layer in enumerate(spec.layers)
            if isinstance(layer, DropoutLayer) and layer.rate > 0
        ]
        self.regularized_layers = [
            index
            for index, layer in enumerate(spec.layers)
            if isinstance(layer, DenseLayer) and layer.kernel_regularizer is not None
        ]
        dropouts = [model.layers[index] for index in self.dropout_layers]
        optimizer = model.optimizer
        kernels = [model.layers[index].kernel for index in self.regularized_layers]
        # Only folds adapt on different rows; without them every member's are the same.
        normalizations = [
            model.layers[index]
            for index, layer in enumerate(spec.layers)
            if folded and isinstance(layer, NormalizationLayer)
        ]

        def trial_epoch(state: Any, key: Any, hyper: Any, *data: Any) -> Any:
            with (
                _traced_hyperparameters(dropouts, kernels, optimizer, hyper),
                _adapted_per_member(normalizations),
            ):
                return epoch(state, key, *data)

        # Validation reports the loss with its regularization, as `fit` does: the
        # trial's own factors there too.
        def trial_evaluation(
            trainable: Any, non_trainable: Any, hyper: Any, x_val: Any, y_val: Any
        ) -> Any:
            with (
                _traced_hyperparameters(dropouts, kernels, optimizer, hyper),
                _adapted_per_member(normalizations),
            ):
                return evaluate(trainable, non_trainable, x_val, y_val)

        # Without folds the data goes in as it is: no gather added to the program.
        # With several sizes the epoch gathers (member_epoch_functions).
        member_epoch = _gathering(trial_epoch) if folded and not several else trial_epoch
        member_evaluation = _gathering(trial_evaluation) if folded else trial_evaluation
        train_axes = (0,) * self.member_arrays + (None, None)
        evaluation_axes = (0, None, None) if folded else (None, None)

        # The counts run in Python, so once per trace: the tests check one compile a group.
        def train(state: Any, keys: Any, hyper: Any, *data: Any) -> Any:
            self.traces["train"] += 1
            vmapped = jax.vmap(member_epoch, in_axes=(0, 0, 0, *train_axes))
            return vmapped(state, keys, hyper, *data)

        def validate(trainable: Any, non_trainable: Any, hyper: Any, *data: Any) -> Any:
            self.traces["evaluate"] += 1
            vmapped = jax.vmap(member_evaluation, in_axes=(0, 0, 0, *evaluation_axes))
            return vmapped(trainable, non_trainable, hyper, *data)

        self.train = jax.jit(train, compiler_options=FULL_OPTIMIZATION)
        self.evaluate = jax.jit(validate, compiler_options=FULL_OPTIMIZATION)

    def renewed(self) -> GroupProgram:
        """The same program from new functions, its traces counted with these,
        for a stack of fewer members. Retracing these very functions is not
        safe: `lax.scan` caches the jaxpr of the epoch's step by the step
        function and its input shapes, which a member axis does not change
        (it is vmapped outside), so the cached jaxpr would keep the first
        trace's per-trial hyperparameters, tracers of a finished trace, that
        the step reads from the substituted `call` and `regularizer`."""
        return GroupProgram(*self.arguments, traces=self.traces)

    def hyperparameters(
        self, trials: list[Trial], weight_decays: list[float | None]
    ) -> dict[str, np.ndarray]:
        """The per-trial inputs, a leading trial axis on each: "dropout" (trials,
        dropout layers) rates, "l1_l2" (trials, regularized layers, 2) factors,
        and "weight_decay" (trials,) unless no trial's optimizer decays (then
        Keras' own path, which skips it, is traced). Float32, as Keras' Python
        floats become when they meet float32 values."""
        dropout = np.zeros((len(trials), len(self.dropout_layers)), dtype="float32")
        l1_l2 = np.zeros((len(trials), len(self.regularized_layers), 2), dtype="float32")
        for row, trial in enumerate(trials):
            for column, index in enumerate(self.dropout_layers):
                layer = trial.spec.layers[index]
                assert isinstance(layer, DropoutLayer)  # one group: the same layer types
                dropout[row, column] = layer.rate
            for column, index in enumerate(self.regularized_layers):
                regularizer = getattr(trial.spec.layers[index], "kernel_regularizer", None)
                assert regularizer is not None  # one group: the same layers regularized
                l1_l2[row, column] = (regularizer.l1, regularizer.l2)
        hyper = {"dropout": dropout, "l1_l2": l1_l2}
        if any(decay is not None for decay in weight_decays):
            hyper["weight_decay"] = np.array(
                [decay or 0.0 for decay in weight_decays], dtype="float32"
            )
        return hyper

    def __call__(
        self, state: Any, keys: Any, hyperparameters: Any, training: tuple[Any, ...],
        validations: Validations,
    ) -> tuple[Any, list[dict[str, float]]]:  # fmt: skip
        """One epoch for every member, then each validation; logs per member,
        named as `fit` names them. `training`: (x, y), or with folds ([size
        slots,] row indices, x, y); each validation's data (x, y), or with
        folds (row indices, x, y), and which members take its logs."""
        import jax

        state, train_logs = self.train(state, keys, hyperparameters, *training)
        val_logs = [self.evaluate(state[0], state[1], hyperparameters, *data)
                    for _, data in validations]  # fmt: skip
        # One transfer for all members' logs.
        on_host, val_on_host = jax.device_get((train_logs, val_logs))
        members = len(next(iter(on_host.values())))
        logs = [{name: float(values[m]) for name, values in on_host.items()}
                for m in range(members)]  # fmt: skip
        for (takes, _), named in zip(validations, val_on_host, strict=True):
            for m in np.flatnonzero(takes):
                logs[m].update({f"val_{name}": float(values[m]) for name, values in named.items()})
        return state, logs


def _gathering(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, its last two arguments (x, y) taken instead as row indices
    and the whole dataset's x and y: the rows are gathered in the program, so
    the dataset is on the device once for every fold."""

    def gathered(*arguments: Any) -> Any:
        *leading, rows, x, y = arguments
        return function(*leading, x[rows], y[rows])

    return gathered


@contextmanager
def _traced_hyperparameters(
    dropouts: list[Any], kernels: list[Any], optimizer: Any, hyper: Any
) -> Iterator[None]:
    """While tracing: each of `dropouts` (keras Dropout layers, rate above zero)
    drops with its entry of `hyper["dropout"]`, each of `kernels` (dense
    kernels with an L1L2 regularizer) is penalized with its row of
    `hyper["l1_l2"]`, and `optimizer` decays weights by `hyper["weight_decay"]`
    when given: traced values instead of Keras' Python floats. Keras' own
    `call`, `regularizer` and `weight_decay` are back on exit.

    The arithmetic is Keras': keras/src/backend/jax/random.py's `dropout` (a
    Bernoulli mask of `1 - rate` from the layer's seed generator, survivors
    scaled by `1 / (1 - rate)`) and keras/src/regularizers' L1L2, with their
    Python branches on the values left out."""
    import jax
    import jax.numpy as jnp

    def dropping(layer: Any, rate: Any) -> Any:
        def call(inputs: Any, training: bool = False) -> Any:
            if not training:
                return inputs
            # Keras' Python float rate: a float32 mask probability, and a divisor
            # in the inputs' dtype (bfloat16 under mixed precision).
            keep = 1.0 - rate
            mask = jax.random.bernoulli(layer.seed_generator.next(), p=keep, shape=inputs.shape)
            scaled = inputs / keep.astype(inputs.dtype)
            return jax.lax.select(mask, scaled, jnp.zeros_like(inputs))

        return call

    def penalty(factors: Any) -> Any:
        def regularize(x: Any) -> Any:
            regularization = jnp.zeros((), dtype=x.dtype)
            regularization += factors[0].astype(x.dtype) * jnp.sum(jnp.abs(x))
            regularization += factors[1].astype(x.dtype) * jnp.sum(jnp.square(x))
            return regularization

        return regularize

    keras_regularizers = [kernel.regularizer for kernel in kernels]
    keras_weight_decay = optimizer.weight_decay
    if "weight_decay" in hyper:
        optimizer.weight_decay = hyper["weight_decay"]
    for position, layer in enumerate(dropouts):
        layer.call = dropping(layer, hyper["dropout"][position])
    for position, kernel in enumerate(kernels):
        kernel.regularizer = penalty(hyper["l1_l2"][position])
    try:
        yield
    finally:
        for layer in dropouts:
            del layer.call
        for kernel, regularizer in zip(kernels, keras_regularizers, strict=True):
            kernel.regularizer = regularizer
        optimizer.weight_decay = keras_weight_decay


@contextmanager
def _adapted_per_member(normalizations: list[Any]) -> Iterator[None]:
    """While tracing: each of `normalizations` (keras Normalization layers)
    normalizes with the member's own adapted mean and variance. Keras keeps
    them twice: as non-trainable variables (`adapt_mean`, `adapt_variance`,
    part of each member's state) and as plain tensors (`mean`, `variance`,
    made from those by `finalize_state`) that `call` reads; traced, those
    tensors would be one constant for every member, the last model's. So
    `call` first remakes them from the variables, which inside
    `stateless_call` hold the member's traced values, and puts Keras'
    tensors back afterwards."""

    def normalizing(layer: Any) -> Any:
        keras_call = type(layer).call

        def call(inputs: Any) -> Any:
            constants = layer.mean, layer.variance
            layer.finalize_state()
            try:
                return keras_call(layer, inputs)
            finally:
                layer.mean, layer.variance = constants

        return call

    for layer in normalizations:
        layer.call = normalizing(layer)
    try:
        yield
    finally:
        for layer in normalizations:
            del layer.call
