"""Trials of one search trained side by side: one fused program, vmapped over members.

worker.group_jobs trains each group (models.training.search.trial_plan.program_groups)
with `train_group`: the single-trial fused epoch (models.training.fused.program)
under `jax.vmap` over each member's weights, optimizer values and shuffle key, on
shared data. Each member starts where models.training.fit.train would for its
seed, so every trial ends where it would have ended alone (tests: within 1e-5).
With `folds` a member is a trial times a fold and gathers its fold's rows inside
the program; with `refit`, each trial's refit on every row trains beside them.
Traced per-member values (dropout, l1/l2, weight decay): .group_program; rungs:
.halving; checkpoints: .group_checkpoints. Not done yet: early stopping per
trial, one compiled program reused across groups or jobs.
"""

from __future__ import annotations

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
from models.training.fused.group_checkpoints import group_checkpoint, restore
from models.training.fused.group_inputs import REFIT, GroupInputs, Member, initial_inputs
from models.training.fused.group_program import GroupProgram, Validations
from models.training.fused.group_state import REFIT_PREFIX, GroupRun, MemberStack
from models.training.fused.halving import check_halving
from models.training.fused.trainer import History, assign_values, place_data
from models.training.search.folds import fold_rows
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
        stacks = [MemberStack(program, members, group, (data.x_train, data.y_train), validations)]
    else:
        stacks = _folded_stacks(trials, group, splits, refit, dataset.x, y)
    run = GroupRun(trials, folds, halving, ranking, first.fit.epochs)
    if resume is not None:
        restore(resume, run, stacks)
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
                partial(group_checkpoint, epoch, run, stacks), final=epoch == first.fit.epochs
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


def _folded_stacks(
    trials: list[Trial], group: GroupInputs, splits: list[tuple[np.ndarray, np.ndarray]],
    refit: bool, x: np.ndarray, y: np.ndarray,
) -> list[MemberStack]:  # fmt: skip
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
        stacks.append(MemberStack(program, members, group, training_data, validations))
    return stacks


def _refit_states(stacks: list[MemberStack]) -> dict[int, Any]:
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
    check_halving(halving, ranking)
