"""What a group of trials holds between its epochs: each stack of members
that share one program, on the device (`MemberStack`), and the host's side,
each trial's history and which trials still run (`GroupRun`).

models.training.fused.group_trainer trains them epoch after epoch;
models.training.fused.group_checkpoints saves and restores them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.training.fused.group_inputs import REFIT, GroupInputs, Member
from models.training.fused.group_program import GroupProgram, Validations, split_each_key
from models.training.fused.halving import EpochLogs, Rungs
from models.training.fused.program import member_orders
from models.training.fused.trainer import History
from models.training.search.folds import fold_summary, merge_fold_logs
from models.training.search.space import Halving, Trial

REFIT_PREFIX = "refit:"  # a trial's logs of its refit member: "refit:loss", ...


class MemberStack:
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


class GroupRun:
    """The host's side of a group's epochs: each trial's history (fold means
    and each fold's logs with folds), which trials run, and halving."""

    def __init__(
        self, trials: list[Trial], folds: int | None, halving: Halving | None,
        ranking: tuple[str, str] | None, epochs: int,
    ) -> None:  # fmt: skip
        self.folds = folds
        self.rungs = Rungs(halving, ranking, epochs)
        self.running = list(range(len(trials)))
        self.histories: list[History] = [{} for _ in trials]
        self.epochs_run = [0 for _ in trials]
        self.stopped = [False for _ in trials]
        self.last_fold_logs: list[list[dict[str, float]]] = [[] for _ in trials]
        self.stopped_states: dict[int, Any] = {}

    def record(self, epoch: int, member_logs: dict[Member, dict[str, float]]) -> EpochLogs:
        """Each trial's logs of this epoch (None for a stopped trial), kept in its history."""
        logs: EpochLogs = [None for _ in self.histories]
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
        if epoch == 1:
            self.rungs.check_metric(logs[0])
        return logs

    def halve(self, epoch: int, logs: EpochLogs) -> list[int] | None:
        """At a rung that stops a trial: the positions of the trials that
        train on (the others are marked stopped); else None."""
        survivors = self.rungs.survivors(epoch, self.running, logs)
        if survivors is not None:
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
