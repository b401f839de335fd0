"""Trials of one search trained side by side: one fused program, vmapped over trials.

PROTOTYPE (issue 15), not yet wired into the worker or the job API.

Trials whose networks share their shapes (models.training.search.shape_groups)
train as one program: the epoch of the single-trial fused trainer
(models.training.fused_program.epoch_functions, the very same functions) under
`jax.vmap`, over the weights, the optimizer's values and the shuffle key, all
stacked along a leading trial axis. The data is shared (not vmapped). Each
trial starts from the weights the single-trial path (models.training.fit.train)
would build for its seed, so the vmapped program changes nothing in the
arithmetic: every trial ends where it would have ended alone (the tests hold
it to 1e-5).

What is per trial, and why it needs no special code:

- the seed: the initial weights are built trial by trial under each trial's
  seed; Keras' dropout seed generators are non-trainable variables, so their
  state is stacked with the weights; each trial's shuffle key is
  `PRNGKey(seed)`, split per epoch as the single trainer splits it.
- the learning rate: a Keras optimizer given a float keeps it in a
  `backend.Variable` tracked among `optimizer.variables`
  (keras/src/optimizers/base_optimizer.py, `__init__` and `learning_rate`), and
  `stateless_apply` reads it from the values it is passed, so it is part of
  the stacked optimizer state, a traced per-trial value.

What is per trial by a substitution while the program is traced
(`_traced_hyperparameters`; Keras reads these as Python floats and branches on
them, `if training and self.rate > 0`, `if self.l1 != 0.0`, so a traced value
cannot simply be assigned):

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

What still splits a group (`UNTRACED`, `program_groups`): the optimizer's
momentum, a Python float that SGD and RMSprop branch on inside their
`update_step` (a substitution per optimizer class would be needed), and
dropout's zero against non-zero. shape_groups lets them vary
(VARY_WITHIN_GROUP); `program_groups` splits its groups further.

Not done yet: early stopping per trial (refused), checkpoints and resume,
successive halving (a mask over trials, or a smaller stack at each rung),
k-fold (folds as another vmapped axis over row masks), reusing one compiled
program across groups of the same shapes, Celery group/chord over groups, the
job API's `search` and its records and events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.datasets import Dataset
from models.errors import JobCancelled
from models.training.backend import FULL_OPTIMIZATION
from models.training.builder import adapt, build_model
from models.training.fit import TrainingResult
from models.training.fused import History, _assign, _place, _values
from models.training.fused_program import DeviceData, epoch_functions
from models.training.labels import LabelEncoding
from models.training.search import Trial, shape_groups
from models.training.spec import DenseLayer, DropoutLayer, ModelSpec

if TYPE_CHECKING:
    import keras

# Fields shape_groups lets vary inside a group that this program still bakes in
# as constants; trials that differ in one train in separate programs.
UNTRACED = (
    "compile.optimizer.momentum",
    "layers.<i>.rate",  # only zero against non-zero: the rate itself is a per-trial input
)


class GroupObserver(Protocol):
    """What a group's training tells the outside world, and asks it: one call
    per epoch with every trial's logs, in the order of the group's trials."""

    def on_epoch_end(self, epoch: int, logs: list[dict[str, float]]) -> None: ...

    def should_stop(self) -> bool: ...


class SilentGroupObserver:
    def on_epoch_end(self, epoch: int, logs: list[dict[str, float]]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def program_groups(trials: Sequence[Trial]) -> list[list[int]]:
    """shape_groups, split further by the UNTRACED fields: each group here is
    one `train_group` call. Trial indices, groups in order of their first trial."""
    by_index = {trial.index: trial for trial in trials}
    groups: list[list[int]] = []
    for shape_group in shape_groups(trials):
        split: dict[str, list[int]] = {}
        for index in shape_group:
            split.setdefault(_untraced_key(by_index[index].spec), []).append(index)
        groups.extend(split.values())
    return groups


@dataclass
class GroupResult:
    """A group's training: per-trial histories and final values, in the order
    of the trials given to `train_group`."""

    trials: list[Trial]
    histories: list[History]
    model: keras.Model  # the group's one model; `result` assigns a trial's values into it
    encoding: LabelEncoding
    fit_seconds: float
    samples: int
    traces: dict[str, int]  # how often each program was traced, i.e. compiled
    weight_decays: list[float | None]  # each trial's optimizer's, Keras' default included
    # (trainable, non-trainable, optimizer) values, each with a leading trial axis.
    stacked_state: Any = field(repr=False)

    def weights(self, position: int) -> tuple[list[np.ndarray], ...]:
        """The trial's final (trainable, non-trainable, optimizer) values."""
        import jax

        return tuple(  # type: ignore[return-value]
            [np.asarray(leaf[position]) for leaf in part]
            for part in jax.device_get(self.stacked_state)
        )

    def result(self, position: int) -> TrainingResult:
        """The trial as models.training.fit.train would have returned it alone,
        ready to publish (`result.model.save`). The model is shared by the
        group: save it before asking for another trial's result."""
        _assign(self.model, self.weights(position))  # the learning rate among them
        # The Python floats the program took as inputs, so the saved config is the trial's.
        spec = self.trials[position].spec
        for layer, spec_layer in zip(self.model.layers, spec.layers, strict=True):
            if isinstance(spec_layer, DropoutLayer):
                layer.rate = spec_layer.rate
            elif isinstance(spec_layer, DenseLayer) and spec_layer.kernel_regularizer is not None:
                layer.kernel_regularizer.l1 = spec_layer.kernel_regularizer.l1
                layer.kernel_regularizer.l2 = spec_layer.kernel_regularizer.l2
        self.model.optimizer.weight_decay = self.weight_decays[position]
        history = self.histories[position]
        return TrainingResult(
            model=self.model,
            encoding=self.encoding,
            history=history,
            metrics={name: values[-1] for name, values in history.items() if values},
            epochs_run=len(history.get("loss", [])),
            fit_seconds=self.fit_seconds,
            samples=self.samples,
        )


def train_group(
    trials: Sequence[Trial], dataset: Dataset, observer: GroupObserver | None = None
) -> GroupResult:
    """Train `trials` (one of `program_groups`) side by side on `dataset`, as
    models.training.fit.train trains one spec; raises JobCancelled when asked
    to stop, ValueError for trials that cannot share a program."""
    import jax
    import keras

    trials = list(trials)
    _check_group(trials)
    observer = observer or SilentGroupObserver()
    first = trials[0].spec
    encoding = LabelEncoding.for_spec(first, dataset.y)
    y = encoding.encode(dataset.y)
    training_rows = first.fit.training_rows(len(dataset.x))
    model = None
    states = []
    weight_decays: list[float | None] = []
    keras.backend.clear_session()  # once with garbage collection, as train() clears
    for trial in trials:
        model = _initial_model(trial.spec, dataset.x[:training_rows])
        states.append(_values(model))
        weight_decays.append(model.optimizer.weight_decay)  # Keras' default where the spec has none
    assert model is not None  # a group has a trial
    # The values of each trial's own model, stacked: the last model built is the
    # group's, its variables only the program's placeholders.
    state = jax.tree.map(lambda *leaves: jax.numpy.stack(leaves), *states)
    data = _place(dataset.x, y, first)
    program = _GroupProgram(model, first, len(data.x_train))
    hyperparameters = program.hyperparameters(trials, weight_decays)
    seeds = [
        trial.spec.seed if trial.spec.seed is not None else np.random.randint(2**31)
        for trial in trials
    ]
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed in seeds])
    histories: list[History] = [{} for _ in trials]
    started = time.perf_counter()
    for epoch_index in range(first.fit.epochs):
        # As the single trainer: `key, epoch_key = split(key)`, trial by trial.
        split = jax.vmap(jax.random.split)(keys)
        keys, epoch_keys = split[:, 0], split[:, 1]
        state, logs = program(state, epoch_keys, hyperparameters, data)
        for history, trial_logs in zip(histories, logs, strict=True):
            for name, value in trial_logs.items():
                history.setdefault(name, []).append(value)
        observer.on_epoch_end(epoch_index + 1, logs)
        if observer.should_stop():
            raise JobCancelled("The job was cancelled while training.")
    fit_seconds = time.perf_counter() - started
    return GroupResult(
        trials=trials,
        histories=histories,
        model=model,
        encoding=encoding,
        fit_seconds=fit_seconds,
        samples=int(dataset.x.shape[0]),
        traces=program.traces,
        weight_decays=weight_decays,
        stacked_state=state,
    )


class _GroupProgram:
    """CompiledEpoch's two programs, vmapped over the leading trial axis of the
    state and the keys; the data is shared."""

    def __init__(self, model: Any, spec: ModelSpec, rows: int) -> None:
        import jax

        epoch, evaluate = epoch_functions(model, spec, rows)
        self.traces = {"train": 0, "evaluate": 0}
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

        def trial_epoch(state: Any, key: Any, hyper: Any, x_train: Any, y_train: Any) -> Any:
            with _traced_hyperparameters(dropouts, kernels, optimizer, hyper):
                return epoch(state, key, x_train, y_train)

        # The counts run in Python, so once per trace: the tests check one compile a group.
        def train(state: Any, keys: Any, hyper: Any, x_train: Any, y_train: Any) -> Any:
            self.traces["train"] += 1
            vmapped = jax.vmap(trial_epoch, in_axes=(0, 0, 0, None, None))
            return vmapped(state, keys, hyper, x_train, y_train)

        # Validation reports the loss with its regularization, as `fit` does: the
        # trial's own factors there too.
        def trial_evaluation(
            trainable: Any, non_trainable: Any, hyper: Any, x_val: Any, y_val: Any
        ) -> Any:
            with _traced_hyperparameters(dropouts, kernels, optimizer, hyper):
                return evaluate(trainable, non_trainable, x_val, y_val)

        def validate(trainable: Any, non_trainable: Any, hyper: Any, x_val: Any, y_val: Any) -> Any:
            self.traces["evaluate"] += 1
            vmapped = jax.vmap(trial_evaluation, in_axes=(0, 0, 0, None, None))
            return vmapped(trainable, non_trainable, hyper, x_val, y_val)

        self.train = jax.jit(train, compiler_options=FULL_OPTIMIZATION)
        self.evaluate = jax.jit(validate, compiler_options=FULL_OPTIMIZATION)

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
        self, state: Any, keys: Any, hyperparameters: Any, data: DeviceData
    ) -> tuple[Any, list[dict[str, float]]]:
        """One epoch for every trial, then validation; logs per trial, named as `fit` names them."""
        import jax

        state, train_logs = self.train(state, keys, hyperparameters, data.x_train, data.y_train)
        named = {name: values for name, values in train_logs.items()}
        if len(data.x_val):
            val_logs = self.evaluate(state[0], state[1], hyperparameters, data.x_val, data.y_val)
            named.update({f"val_{name}": values for name, values in val_logs.items()})
        on_host = jax.device_get(named)  # one transfer for all trials' logs
        trials = len(next(iter(on_host.values())))
        logs = [{name: float(values[t]) for name, values in on_host.items()} for t in range(trials)]
        return state, logs


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


def _initial_model(spec: ModelSpec, x_train: np.ndarray) -> keras.Sequential:
    """The model models.training.fit.train builds for `spec`, built the same way
    (session cleared, global seed set, adapted, optimizer built), so its initial
    values equal the single-trial run's."""
    import keras

    # Keras' global state (layer names, the global seed generator) is reset as
    # train() resets it; its garbage collection (0.25 s a call, most of a group's
    # set-up) is not needed for equal values, and train_group runs it once.
    keras.backend.clear_session(free_memory=False)
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    model = build_model(spec)
    adapt(model, x_train)
    model.optimizer.build(model.trainable_variables)
    return model


def _check_group(trials: list[Trial]) -> None:
    if not trials:
        raise ValueError("A group has at least one trial.")
    if len(program_groups(trials)) != 1:
        raise ValueError(
            "These trials cannot share one program: they differ in more than the seed, "
            "learning rate, weight decay, dropout rates and l1/l2 factors "
            f"(program_groups splits them: {program_groups(trials)})."
        )
    if trials[0].spec.fit.early_stopping is not None:
        raise ValueError("Early stopping per trial is not supported side by side yet.")


def _untraced_key(spec: ModelSpec) -> str:
    options = spec.compile.optimizer_options
    layers: list[Any] = []
    for layer in spec.layers:
        layers.append(layer.rate > 0 if isinstance(layer, DropoutLayer) else None)
    return json.dumps([options.momentum, layers])
