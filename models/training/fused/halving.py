"""Successive halving within one group of trials: which trials stop at which epoch.

At each rung (an epoch below the last) the trials still running are ranked
by the ranking metric in that epoch's logs (the fold mean with folds), and
only the best `max(1, ceil(keep * running))` train on. It ranks the trials
of one group only: trials of other groups are not compared. The group's
trainer (models.training.fused.group_trainer) then slices its stacks down to
the trials kept and traces the program again for the smaller stack.
"""

from __future__ import annotations

import math

from models.training.search.ranking import value_key
from models.training.search.space import Halving

EpochLogs = list[dict[str, float] | None]  # each trial's logs of an epoch; None: stopped


class Rungs:
    """The epochs at which `halving` stops trials, and which it stops there."""

    def __init__(
        self, halving: Halving | None, ranking: tuple[str, str] | None, epochs: int
    ) -> None:
        self.halving = halving
        self.ranking = ranking
        # A rung at the last epoch or beyond would stop nothing that still trains.
        self.epochs = {rung for rung in halving.rungs if rung < epochs} if halving else set()

    def survivors(self, epoch: int, running: list[int], logs: EpochLogs) -> list[int] | None:
        """At a rung that stops a trial: the positions of `running` that train
        on; else None."""
        if epoch not in self.epochs:
            return None
        assert self.halving is not None and self.ranking is not None  # rungs come with them
        metric, mode = self.ranking
        # Rounded, so that 0.3 * 10 keeps 3, not ceil(3.0000000000000004) = 4.
        count = max(1, math.ceil(round(self.halving.keep * len(running), 9)))
        if count == len(running):
            return None  # the last trial running: nothing to slice, nothing to retrace

        def rank(position: int) -> tuple[bool, float]:
            return value_key(logs[position][metric], mode)  # type: ignore[index]

        return sorted(sorted(running, key=rank)[:count])  # ties: the earlier trial

    def check_metric(self, logs: dict[str, float] | None) -> None:
        """Refuse, at the first epoch, a ranking metric the trials do not log."""
        if not self.epochs:
            return
        assert self.ranking is not None and logs is not None  # the first epoch: all run
        metric = self.ranking[0]
        if metric not in logs or ":" in metric:
            names = sorted(name for name in logs if ":" not in name)
            raise ValueError(
                f"Halving ranks trials by a metric they log: one of {names}. Received: {metric!r}"
            )


def check_halving(halving: Halving | None, ranking: tuple[str, str] | None) -> None:
    """Refuse halving without a ranking to halve by."""
    if halving is not None and (ranking is None or ranking[1] not in ("min", "max")):
        raise ValueError(
            "Halving ranks the trials: give ranking=(metric, 'min' or 'max'). "
            f"Received: ranking={ranking!r}"
        )
