"""A group's checkpoint: everything its training needs to go on after an
epoch (every member's values and shuffle key, who still runs, the histories),
in one models.storage.checkpoint_files.Checkpoint, and back.

A group redelivered after its worker died goes on from its last checkpoint
and ends where it would have ended uninterrupted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.storage.checkpoint_files import Checkpoint
from models.training.fused.group_state import GroupRun, MemberStack


def group_checkpoint(epoch: int, run: GroupRun, stacks: list[MemberStack]) -> Checkpoint:
    """Everything a group needs to go on after `epoch`: each stack's members,
    their values and shuffle keys, and the host's side (`GroupRun`). The
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


def restore(saved: Checkpoint, run: GroupRun, stacks: list[MemberStack]) -> None:
    """Put `stacks` and `run` back as `group_checkpoint` saved them."""
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
