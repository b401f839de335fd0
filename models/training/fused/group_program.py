"""The program a group of trials trains in: the single-trial fused epoch
(models.training.fused.program), vmapped over members (a trial, or a trial's
fold or refit), with the hyperparameters Keras reads as Python floats made
per-member inputs. models.training.fused.group_trainer runs it, epoch after epoch.

Keras branches on those floats (`if training and self.rate > 0`), so a traced
value cannot simply be assigned: while the program is traced, each layer kind
whose `per_trial_fields` are traced substitutes its arithmetic with them
(`LayerKind.tracing_with`, models.layers), with k-fold members a kind that
adapts computes with each member's adapted state (`tracing_per_member`), and
the optimizer's `weight_decay` is the per-trial value (Keras' own path only
asks whether it is None, then casts it; no decay is an exact zero).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import cache
from typing import Any

import numpy as np

from models.layers.kind import LayerKind, replaced
from models.layers.registry import kind_of
from models.training.backend import FULL_OPTIMIZATION
from models.training.fused.program import epoch_functions, member_epoch_functions
from models.training.search.space import Trial
from models.training.spec import ModelSpec

# Per member, the rows it validates on: (which members take these logs, the data).
Validations = list[tuple[np.ndarray, tuple[Any, ...]]]


@cache
def split_each_key() -> Callable[[Any], tuple[Any, Any]]:
    """keys -> (next keys, epoch keys): `jax.random.split` of each key of a
    stack, compiled once a process: an eager `vmap` traces again on every
    call, so on every epoch."""
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
        # per_trial_fields are inputs of the program: dropout that drops, regularized dense.
        self.traced_layers = [
            index for index, layer in enumerate(spec.layers) if kind_of(layer).is_traced(layer)
        ]
        traced = {
            f"layers.{index}": (kind_of(spec.layers[index]), model.layers[index])
            for index in self.traced_layers
        }
        # Only folds adapt on different rows; without them every member's are the same.
        per_member = [
            (kind_of(layer), model.layers[index])
            for index, layer in enumerate(spec.layers)
            if folded and kind_of(layer).adapts
        ]
        optimizer = model.optimizer

        def trial_epoch(state: Any, key: Any, hyper: Any, *data: Any) -> Any:
            with _substituted(traced, per_member, optimizer, hyper):
                return epoch(state, key, *data)

        # Validation reports the loss with its regularization, as `fit` does: the
        # trial's own factors there too.
        def trial_evaluation(
            trainable: Any, non_trainable: Any, hyper: Any, x_val: Any, y_val: Any
        ) -> Any:
            with _substituted(traced, per_member, optimizer, hyper):
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
        """The per-trial inputs, a leading trial axis on each: "layers.<i>" for
        each traced spec layer i, its (trials, per_trial_fields) values, and
        "weight_decay" (trials,) unless no trial's optimizer decays (then
        Keras' own path, which skips it, is traced). Float32, as Keras' Python
        floats become when they meet float32 values."""
        hyper = {f"layers.{index}": _trial_values(trials, index) for index in self.traced_layers}
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


def _trial_values(trials: list[Trial], index: int) -> np.ndarray:
    """(trials, per_trial_fields) values of each trial's layer `index`."""
    rows = []
    for trial in trials:
        layer = trial.spec.layers[index]
        kind = kind_of(layer)
        assert kind.is_traced(layer)  # one group: the same layers traced
        rows.append(kind.trial_values(layer))
    return np.array(rows, dtype="float32")


@contextmanager
def _substituted(
    traced: dict[str, tuple[LayerKind, Any]], per_member: list[tuple[LayerKind, Any]],
    optimizer: Any, hyper: Any,
) -> Iterator[None]:  # fmt: skip
    """While tracing: each of `traced` (a kind and its Keras layer, by their
    name in `hyper`) computes with its entry of `hyper`, each of `per_member`
    with the member's adapted state, and `optimizer` decays weights by
    `hyper["weight_decay"]` when given. Keras' own are back on exit."""
    with ExitStack() as stack:
        if "weight_decay" in hyper:
            stack.enter_context(replaced(optimizer, "weight_decay", hyper["weight_decay"]))
        for name, (kind, layer) in traced.items():
            stack.enter_context(kind.tracing_with(layer, hyper[name]))
        for kind, layer in per_member:
            stack.enter_context(kind.tracing_per_member(layer))
        yield
