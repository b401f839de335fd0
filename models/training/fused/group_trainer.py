"""Trials of one search trained side by side: one fused program, vmapped over trials.

worker.search_jobs trains each group of a search or k-fold job with
`train_group`; models.training.search.trial_plan says which trials form a group.

Trials whose networks share their shapes (models.training.search.space.shape_groups)
train as one program: the epoch of the single-trial fused trainer
(models.training.fused.program.epoch_functions, the very same functions) under
`jax.vmap`, over the weights, the optimizer's values and the shuffle key, all
stacked along a leading trial axis. The data is shared (not vmapped). Each
trial starts from the weights the single-trial path (models.training.fit.train)
would build for its seed (a model is built once per seed, each trial's
learning rate written into its copy), so the vmapped program changes nothing
but rounding: every trial ends where it would have ended alone (the tests hold
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

What is per trial by a substitution while the program is traced (a
dropout layer's rate, a dense layer's l1 and l2, the optimizer's weight
decay): models.training.fused.group_program says how.

What still splits a group (`UNTRACED`, `program_groups`, in
models.training.search.trial_plan): the optimizer's momentum, a Python float that SGD
and RMSprop branch on inside their `update_step` (a substitution per optimizer
class would be needed), and dropout's zero against non-zero. shape_groups lets
them vary (VARY_WITHIN_GROUP); `program_groups` splits its groups further.

k-fold validation (`folds`): the vmapped axis is over members, a trial times
a fold (models.training.search.folds.fold_rows: the same folds for every trial).
The dataset is on the device once; each member takes its fold's training and
validation row indices and gathers its rows inside the program, so a member
trains on exactly what that fold's rows would train on alone (the tests hold
each fold to 1e-5). Each member starts from the values train() builds on its
fold's training rows: a normalization layer adapts per fold, and its adapted
mean and variance, which Keras' `call` reads as constant tensors, are remade
from the member's state while tracing (models.training.fused.group_program). Folds whose
training sets differ in size (k does not divide the rows) share the program
all the same (models.training.fused.program.member_epoch_functions: each
member draws its own size's order, and the steps past its own last batch
leave it as it was), unless a size falls below the batch size. A trial's
logs are its fold means under the usual names and each fold's under
`f{j}:`; a trial is k models, so there is no one model to return
(`GroupResult.result` refuses) unless the group also trains each trial's
refit (`refit`): one more member, on every row, beside its folds in the same
program and epochs, its logs under `refit:`. A 5-fold job of the iris
program trains 6 members side by side instead of a fold program, then a
second program, set-up and compilation for the refit.

Successive halving (`halving`): at each rung the stack of members is sliced
down to the trials kept, and the program traced again for the smaller stack.
It ranks the trials of this group only: trials of other groups are not
compared.

Not done yet: early stopping per trial (refused), reusing one compiled
program across groups or jobs of the same shapes (each job traces and lowers
its programs again: ~0.2 s of a 5-fold iris job on a 2-core host).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.datasets import Dataset
from models.errors import JobCancelled
from models.layers.registry import kind_of
from models.storage.checkpoint_files import Checkpoint
from models.training.class_labels import LabelEncoding
from models.training.fit import CheckpointSink, TrainingResult
from models.training.fused.group_inputs import REFIT, GroupInputs, Member, initial_inputs
from models.training.fused.group_program import GroupProgram, Validations, split_each_key
from models.training.fused.program import member_orders
from models.training.fused.trainer import History, assign_values, place_data
from models.training.search.folds import fold_rows, fold_summary, merge_fold_logs
from models.training.search.space import Halving, Trial
from models.training.search.trial_plan import program_groups

if TYPE_CHECKING:
    import keras


class GroupObserver(Protocol):
    """What a group's training tells the outside world, and asks it: one call
    per epoch with every trial's logs, in the order of the group's trials
    (None for a trial that halving stopped)."""

    def on_epoch_end(self, epoch: int, logs: list[dict[str, float] | None]) -> None: ...

    def should_stop(self) -> bool: ...


class SilentGroupObserver:
    def on_epoch_end(self, epoch: int, logs: list[dict[str, float] | None]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


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
    folds: int | None  # k with k-fold validation: each trial is k models
    # With folds, each trial's final-epoch metrics over its folds (folds.fold_summary); else None.
    fold_metrics: list[dict[str, dict[str, Any]] | None]
    epochs_run: list[int]
    stopped: list[bool]  # stopped at a halving rung
    # (trainable, non-trainable, optimizer) values, each with a leading axis over
    # the trials of `stacked_positions`: those that trained to the last epoch.
    # None with folds: a trial is k models there.
    stacked_state: Any = field(repr=False)
    stacked_positions: list[int]
    # The values of each trial halving stopped, as they were at its rung.
    stopped_states: dict[int, Any] = field(repr=False)
    # With folds and `refit`: each trial's model trained on every row, by position.
    refit_states: dict[int, Any] = field(repr=False, default_factory=dict)

    def weights(self, position: int) -> tuple[list[np.ndarray], ...]:
        """The trial's final (trainable, non-trainable, optimizer) values: at its
        rung for a trial halving stopped. ValueError with folds (k models)."""
        import jax

        self._check_one_model(position)
        if self.folds is not None:
            return self.refit_states[position]  # type: ignore[no-any-return]
        if position in self.stopped_states:
            return self.stopped_states[position]  # type: ignore[no-any-return]
        row = self.stacked_positions.index(position)
        return tuple(  # type: ignore[return-value]
            [np.asarray(leaf[row]) for leaf in part] for part in jax.device_get(self.stacked_state)
        )

    def result(self, position: int) -> TrainingResult:
        """The trial as models.training.fit.train would have returned it alone,
        ready to publish (`result.model.save`). The model is shared by the
        group: save it before asking for another trial's result. A trial that
        halving stopped is as it was at its rung. With folds, the trial's
        refit on every row (`train_group(refit=True)`)."""
        assign_values(self.model, self.weights(position))  # the learning rate among them
        # The Python floats the program took as inputs, so the saved config is the trial's.
        spec = self.trials[position].spec
        for layer, spec_layer in zip(self.model.layers, spec.layers, strict=True):
            kind_of(spec_layer).write_trial_values(layer, spec_layer)
        self.model.optimizer.weight_decay = self.weight_decays[position]
        history = self.histories[position]
        if self.folds is not None:  # the refit's own logs
            history = {name.removeprefix(REFIT_PREFIX): values for name, values in history.items()
                       if name.startswith(REFIT_PREFIX)}  # fmt: skip
        return TrainingResult(
            model=self.model,
            encoding=self.encoding,
            history=history,
            metrics={name: values[-1] for name, values in history.items() if values},
            epochs_run=len(history.get("loss", [])),
            fit_seconds=self.fit_seconds,
            samples=self.samples,
        )

    def _check_one_model(self, position: int) -> None:
        if self.folds is not None and position not in self.refit_states:
            raise ValueError(
                f"A trial trained with k-fold validation is {self.folds} models, one per fold, "
                "each fitted on part of the rows: there is no one model to return. Refit the "
                "trial's spec on every row instead (train_group(refit=True) trains it beside "
                f"its folds). Received: position={position}, folds={self.folds}"
            )


def train_group(
    trials: Sequence[Trial],
    dataset: Dataset,
    observer: GroupObserver | None = None,
    *,
    folds: int | None = None,
    halving: Halving | None = None,
    ranking: tuple[str, str] | None = None,
    resume: Checkpoint | None = None,
    checkpoints: CheckpointSink | None = None,
    refit: bool = False,
) -> GroupResult:
    """Train `trials` (one of `program_groups`) side by side on `dataset`, as
    models.training.fit.train trains one spec; raises JobCancelled when asked
    to stop, ValueError for trials that cannot share a program.

    `checkpoints` is offered one after every epoch (`group_checkpoint`: every
    member's values and shuffle key, who still runs, the histories); from
    `resume`, one of those, the group goes on where it was saved and ends
    where it would have ended uninterrupted.

    With `folds` (k), each trial trains k members side by side, one per fold
    of models.training.search.folds.fold_rows (the specs' validation_split must be 0:
    the folds validate), and its logs are the fold means plus each fold's
    under `f{j}:`; with `refit` too, each trial also trains on every row, a
    member beside its folds (`GroupResult.result` is that model, its logs in
    the trial's under `refit:`). With `halving`, after the epoch of each rung below the last
    epoch the trials still running are ranked by `ranking` ((metric, "min" or
    "max"), the fold mean with folds) in that epoch's logs, and only the best
    `max(1, ceil(keep * running))` train on. Halving ranks within this group
    only: trials of other groups are not compared."""
    import keras

    trials = list(trials)
    _check_group(trials, folds, halving, ranking, refit)
    observer = observer or SilentGroupObserver()
    first = trials[0].spec
    encoding = LabelEncoding.for_spec(first, dataset.y)
    y = encoding.encode(dataset.y)
    splits = fold_rows(len(dataset.x), folds) if folds else None
    keras.backend.clear_session()  # once with garbage collection, as train() clears
    group = initial_inputs(trials, dataset, splits, refit)
    model = group.model
    if splits is None:
        data = place_data(dataset.x, y, first)
        program = GroupProgram(model, first, (len(data.x_train),), folded=False)
        members: list[Member] = [(position, None) for position in range(len(trials))]
        everyone = np.ones(len(members), dtype=bool)
        validations = [(everyone, (data.x_val, data.y_val))] if len(data.x_val) else []
        stacks = [_Stack(program, members, group, (data.x_train, data.y_train), validations)]
    else:
        stacks = _folded_stacks(trials, group, splits, refit, dataset.x, y)
    run = _Training(trials, folds, halving, ranking, first.fit.epochs)
    if resume is not None:
        _restore(resume, run, stacks)
    started = time.perf_counter()
    for epoch in range((resume.epoch if resume else 0) + 1, first.fit.epochs + 1):
        member_logs = {member: logs for stack in stacks for member, logs in stack.epoch()}
        logs = run.record(epoch, member_logs)
        observer.on_epoch_end(epoch, logs)
        survivors = run.halve(epoch, logs)
        if survivors is not None:
            for stack in stacks:
                if splits is None:
                    run.stopped_states.update(stack.values_of_others(survivors))
                stack.keep(survivors)
        if checkpoints is not None:  # before stopping: a stopping worker's last epoch is kept
            checkpoints.offer(
                partial(_group_checkpoint, epoch, run, stacks), final=epoch == first.fit.epochs
            )
        if observer.should_stop():
            raise JobCancelled("The job was cancelled while training.")
    fit_seconds = time.perf_counter() - started
    return GroupResult(
        trials=trials,
        histories=run.histories,
        model=model,
        encoding=encoding,
        fit_seconds=fit_seconds,
        samples=int(dataset.x.shape[0]),
        traces=_sum_traces(stack.program.traces for stack in stacks),
        weight_decays=group.weight_decays,
        folds=folds,
        fold_metrics=run.fold_metrics(),
        epochs_run=run.epochs_run,
        stopped=run.stopped,
        stacked_state=stacks[0].state if splits is None else None,
        stacked_positions=[position for position, _ in stacks[0].members] if splits is None else [],
        stopped_states=run.stopped_states,
        refit_states=_refit_states(stacks),
    )


REFIT_PREFIX = "refit:"  # a trial's logs of its refit member: "refit:loss", ...


def _folded_stacks(
    trials: list[Trial], group: GroupInputs, splits: list[tuple[np.ndarray, np.ndarray]],
    refit: bool, x: np.ndarray, y: np.ndarray,
) -> list[_Stack]:  # fmt: skip
    """Each trial's folds (and its refit) as members of as few programs as
    can share one: one, unless some training size is below the batch size
    (members side by side take batches of one size). The dataset is on the
    device once; each member gathers its own rows in the program."""
    import jax.numpy as jnp

    whole = (jnp.asarray(x), jnp.asarray(y))
    kinds: list[tuple[int, np.ndarray, np.ndarray | None]] = [
        (fold, training, validation) for fold, (training, validation) in enumerate(splits)
    ]
    if refit:
        kinds.append((REFIT, np.arange(len(x)), None))
    batch_size = trials[0].spec.fit.batch_size
    stacks = []
    for batch in dict.fromkeys(min(batch_size, len(training)) for _, training, _ in kinds):
        here = [kind for kind in kinds if min(batch_size, len(kind[1])) == batch]
        sizes = tuple(dict.fromkeys(len(training) for _, training, _ in here))
        program = GroupProgram(group.model, trials[0].spec, sizes, folded=True)
        members: list[Member] = [
            (position, fold) for position in range(len(trials)) for fold, _, _ in here
        ]
        each = here * len(trials)  # each member's kind, in the order of `members`
        longest = max(sizes)
        row_index = jnp.asarray(
            np.stack([np.pad(training, (0, longest - len(training))) for _, training, _ in each]),
            "int32",
        )
        training_data: tuple[Any, ...] = (row_index, *whole)
        if len(sizes) > 1:  # which size each member is
            slots = [sizes.index(len(training)) for _, training, _ in each]
            training_data = (jnp.asarray(slots, "int32"), *training_data)
        validations: Validations = []
        # One evaluation per validation size (a refit validates on nothing);
        # members of another size take rows of their own there, and no logs.
        for rows in dict.fromkeys(len(val) for _, _, val in each if val is not None):
            takes = np.array([val is not None and len(val) == rows for _, _, val in each])
            index = np.stack([val if val is not None and took else np.zeros(rows, dtype=int)
                              for took, (_, _, val) in zip(takes, each, strict=True)])  # fmt: skip
            validations.append((takes, (jnp.asarray(index, "int32"), *whole)))
        stacks.append(_Stack(program, members, group, training_data, validations))
    return stacks


def _refit_states(stacks: list[_Stack]) -> dict[int, Any]:
    """The final values, on the host, of each trial's refit member, by position."""
    import jax

    states: dict[int, Any] = {}
    for stack in stacks:
        rows = [row for row, (_, fold) in enumerate(stack.members) if fold == REFIT]
        if rows:
            on_host = jax.device_get(stack.state)
            for row in rows:
                position = stack.members[row][0]
                states[position] = tuple([np.asarray(leaf[row]) for leaf in part]
                                         for part in on_host)  # fmt: skip
    return states


class _Stack:
    """Members that share one program: their state, shuffle keys and
    hyperparameters stacked along a leading member axis, and the data they
    train and validate on (the program's `training` and `validations`)."""

    def __init__(
        self, program: GroupProgram, members: list[Member], group: GroupInputs,
        training: tuple[Any, ...], validations: Validations,
    ) -> None:  # fmt: skip
        import jax
        import jax.numpy as jnp

        self.program = program
        self.members = members
        self.state = jax.tree.map(
            lambda *leaves: jnp.stack(leaves), *[group.states[member] for member in members]
        )
        # A trial's seed for each of its folds, as each fold trained alone takes it.
        self.keys = jnp.stack([jax.random.PRNGKey(group.seeds[p]) for p, _ in members])
        self.hyperparameters = program.hyperparameters(
            [group.trials[position] for position, _ in members],
            [group.weight_decays[position] for position, _ in members],
        )
        self.training = training
        self.validations = validations

    def epoch(self) -> list[tuple[Member, dict[str, float]]]:
        """One epoch of every member; their logs."""

        # As the single trainer: `key, epoch_key = split(key)`, member by member.
        self.keys, epoch_keys = split_each_key()(self.keys)
        draws = epoch_keys
        if self.program.member_arrays == 2:  # several sizes: each member's order, drawn apart
            orders = member_orders(self.program.sizes, self.program.shuffle)
            draws = orders(epoch_keys, self.training[0])
        self.state, logs = self.program(
            self.state, draws, self.hyperparameters, self.training, self.validations
        )
        return list(zip(self.members, logs, strict=True))

    def keep(self, positions: list[int]) -> None:
        """Only the members of the trials at `positions` train on: the stack
        shrinks (and the program is traced again for its new size)."""
        import jax

        rows = np.array([row for row, (p, _) in enumerate(self.members) if p in positions])
        self.program = self.program.renewed()
        self.members = [self.members[row] for row in rows]
        self.state = jax.tree.map(lambda leaf: leaf[rows], self.state)
        self.keys = self.keys[rows]
        self.hyperparameters = {name: values[rows] for name, values in self.hyperparameters.items()}
        # The members' own arrays (row indices, slots) come first, then the shared data.
        own = self.program.member_arrays
        self.training = (*[array[rows] for array in self.training[:own]], *self.training[own:])
        own = 1 if self.program.folded else 0
        self.validations = [
            (takes[rows], (*[array[rows] for array in data[:own]], *data[own:]))
            for takes, data in self.validations
        ]

    def values_of_others(self, positions: list[int]) -> dict[int, Any]:
        """The values, on the host, of the members whose trial is not at `positions`."""
        import jax

        on_host = jax.device_get(self.state)
        return {
            position: tuple([np.asarray(leaf[row]) for leaf in part] for part in on_host)
            for row, (position, _) in enumerate(self.members)
            if position not in positions
        }


class _Training:
    """The host's side of a group's epochs: each trial's history (fold means
    and each fold's logs with folds), which trials run, and halving."""

    def __init__(
        self, trials: list[Trial], folds: int | None, halving: Halving | None,
        ranking: tuple[str, str] | None, epochs: int,
    ) -> None:  # fmt: skip
        self.folds = folds
        self.halving = halving
        self.ranking = ranking
        # A rung at the last epoch or beyond would stop nothing that still trains.
        self.rungs = {rung for rung in halving.rungs if rung < epochs} if halving else set()
        self.running = list(range(len(trials)))
        self.histories: list[History] = [{} for _ in trials]
        self.epochs_run = [0 for _ in trials]
        self.stopped = [False for _ in trials]
        self.last_fold_logs: list[list[dict[str, float]]] = [[] for _ in trials]
        self.stopped_states: dict[int, Any] = {}

    def record(
        self, epoch: int, member_logs: dict[Member, dict[str, float]]
    ) -> list[dict[str, float] | None]:
        """Each trial's logs of this epoch (None for a stopped trial), kept in its history."""
        logs: list[dict[str, float] | None] = [None for _ in self.histories]
        for position in self.running:
            if self.folds is None:
                trial_logs = member_logs[(position, None)]
            else:
                per_fold = [member_logs[(position, fold)] for fold in range(self.folds)]
                self.last_fold_logs[position] = per_fold
                trial_logs = merge_fold_logs(per_fold)
                refit = member_logs.get((position, REFIT), {})
                trial_logs.update({f"{REFIT_PREFIX}{name}": value for name, value in refit.items()})
            for name, value in trial_logs.items():
                self.histories[position].setdefault(name, []).append(value)
            self.epochs_run[position] = epoch
            logs[position] = trial_logs
        if epoch == 1 and self.rungs:
            self._check_metric(logs[0])
        return logs

    def halve(self, epoch: int, logs: list[dict[str, float] | None]) -> list[int] | None:
        """At a rung that stops a trial: the positions of the trials that
        train on (the others are marked stopped); else None."""
        if epoch not in self.rungs:
            return None
        assert self.halving is not None and self.ranking is not None  # rungs come with them
        metric, mode = self.ranking
        # Rounded, so that 0.3 * 10 keeps 3, not ceil(3.0000000000000004) = 4.
        count = max(1, math.ceil(round(self.halving.keep * len(self.running), 9)))
        if count == len(self.running):
            return None  # the last trial running: nothing to slice, nothing to retrace

        def rank(position: int) -> tuple[bool, float]:
            value = logs[position][metric]  # type: ignore[index]
            return math.isnan(value), value if mode == "min" else -value  # NaN ranks last

        survivors = sorted(sorted(self.running, key=rank)[:count])  # ties: the earlier trial
        for position in self.running:
            self.stopped[position] = position not in survivors
        self.running = survivors
        return survivors

    def fold_metrics(self) -> list[dict[str, dict[str, Any]] | None]:
        if self.folds is None:
            return [None for _ in self.histories]
        return [
            {name: fold_summary([logs[name] for logs in per_fold]) for name in per_fold[0]}
            for per_fold in self.last_fold_logs
        ]

    def _check_metric(self, logs: dict[str, float] | None) -> None:
        assert self.ranking is not None and logs is not None  # the first epoch: all run
        metric = self.ranking[0]
        if metric not in logs or ":" in metric:
            names = sorted(name for name in logs if ":" not in name)
            raise ValueError(
                f"Halving ranks trials by a metric they log: one of {names}. Received: {metric!r}"
            )


def _group_checkpoint(epoch: int, run: _Training, stacks: list[_Stack]) -> Checkpoint:
    """Everything a group needs to go on after `epoch`: each stack's members,
    their values and shuffle keys, and the host's side (`_Training`). The
    arrays go in `trainable`, in order (each stack's state leaves, then its
    keys; then each stopped trial's values); `extra` says how many are whose."""
    import jax

    arrays: list[np.ndarray] = []
    layout: list[dict[str, Any]] = []
    for stack in stacks:
        leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(stack.state))]
        arrays += [*leaves, np.asarray(jax.device_get(stack.keys))]
        layout.append({"members": [list(member) for member in stack.members],
                       "leaves": len(leaves)})  # fmt: skip
    stopped = sorted(run.stopped_states)
    for position in stopped:
        arrays += [np.asarray(leaf) for leaf in jax.tree.leaves(run.stopped_states[position])]
    history = {f"{position}:{name}": list(values)
               for position, trial in enumerate(run.histories)
               for name, values in trial.items()}  # fmt: skip
    extra = {
        "stacks": layout,
        "running": run.running,
        "stopped": run.stopped,
        "epochs_run": run.epochs_run,
        "last_fold_logs": run.last_fold_logs,
        "stopped_states": stopped,
    }
    return Checkpoint(epoch=epoch, history=history, trainable=arrays, non_trainable=[],
                      optimizer=[], extra=extra)  # fmt: skip


def _restore(saved: Checkpoint, run: _Training, stacks: list[_Stack]) -> None:
    """Put `stacks` and `run` back as `_group_checkpoint` saved them."""
    import jax

    extra = saved.extra
    run.running = list(extra["running"])
    run.stopped = list(extra["stopped"])
    run.epochs_run = list(extra["epochs_run"])
    run.last_fold_logs = [list(logs) for logs in extra["last_fold_logs"]]
    for name, values in saved.history.items():
        position, metric = name.split(":", 1)
        run.histories[int(position)][metric] = list(values)
    arrays = iter(saved.trainable)
    for stack, layout in zip(stacks, extra["stacks"], strict=True):
        if [list(member) for member in stack.members] != layout["members"]:
            stack.keep(run.running)  # halving had stopped some: the stack as it was then
        assert [list(member) for member in stack.members] == layout["members"]
        structure = jax.tree.structure(stack.state)
        leaves = [next(arrays) for _ in range(layout["leaves"])]
        stack.state = jax.tree.unflatten(structure, [jax.numpy.asarray(x) for x in leaves])
        stack.keys = jax.numpy.asarray(next(arrays))
    for position in extra["stopped_states"]:
        structure = jax.tree.structure(stacks[0].state)
        leaves = [next(arrays) for _ in jax.tree.leaves(stacks[0].state)]
        run.stopped_states[position] = tuple(
            list(part) for part in jax.tree.unflatten(structure, leaves)
        )


def _sum_traces(traces: Iterable[dict[str, int]]) -> dict[str, int]:
    total = {"train": 0, "evaluate": 0}
    for counts in traces:
        for name, count in counts.items():
            total[name] += count
    return total


def _check_group(
    trials: list[Trial], folds: int | None, halving: Halving | None,
    ranking: tuple[str, str] | None, refit: bool = False,
) -> None:  # fmt: skip
    if not trials:
        raise ValueError("A group has at least one trial.")
    if refit and folds is None:
        raise ValueError("A refit trains beside its trial's folds: give folds too.")
    if len(program_groups(trials)) != 1:
        raise ValueError(
            "These trials cannot share one program: they differ in more than the seed, "
            "learning rate, weight decay, dropout rates and l1/l2 factors "
            f"(program_groups splits them: {program_groups(trials)})."
        )
    fit = trials[0].spec.fit
    if fit.early_stopping is not None:
        raise ValueError("Early stopping per trial is not supported side by side yet.")
    if folds is not None and fit.validation_split:
        raise ValueError(
            "With folds, each fold validates on its own rows: the specs' validation_split "
            f"must be 0. Received: validation_split={fit.validation_split}, folds={folds}"
        )
    if halving is not None and (ranking is None or ranking[1] not in ("min", "max")):
        raise ValueError(
            "Halving ranks the trials: give ranking=(metric, 'min' or 'max'). "
            f"Received: ranking={ranking!r}"
        )
