"""The one order of a search's (or k-fold job's) trials: the worker picks the
trial it publishes by it (`better`), and the API shows it as each trial's
`rank` (`with_ranks`), which the CLI and the dashboard show as they are.

Best first: the trials that ran to their end (or still run) by the metric,
lower or higher first as the mode says; then those a halving rung stopped
(a later rung first, as halving ranks them); then, unranked, those without a
value (queued, failed, NaN or no number). Ties go to the earlier group, then
the earlier trial, as the worker's strict comparison keeps the first best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

Trial = Mapping[str, Any]
# A trial's sort key: (tier, -epochs when stopped, signed value, group, index).
Place = tuple[int, int, float, int, int]
UNRANKED = 2  # the tier of a trial without a value


def better(mode: str, value: float, than: float | None) -> bool:
    """Whether `value` ranks above `than` (None: nothing yet); NaN never does."""
    if math.isnan(value):
        return False
    if than is None or math.isnan(than):
        return True
    return value < than if mode == "min" else value > than


def value_key(value: float, mode: str) -> tuple[bool, float]:
    """How one value sorts by `mode`, smaller first: the better first, NaN last
    (halving ranks a rung's values by it)."""
    return math.isnan(value), -value if mode == "max" else value


def place(trial: Trial, metric: str, mode: str) -> Place:
    """Where `trial` sorts among its search's trials: smaller is better."""
    value = (trial.get("metrics") or {}).get(metric)
    group, index = int(trial.get("group") or 0), int(trial["index"])
    if not _is_number(value) or math.isnan(value) or trial.get("state") == "failed":
        return (UNRANKED, 0, 0.0, 0, index)
    _, signed = value_key(value, mode)
    if trial.get("state") == "stopped":
        return (1, -int(trial.get("epochs") or 0), signed, group, index)
    return (0, 0, signed, group, index)


def ranked(trials: Sequence[Trial], metric: str, mode: str) -> list[tuple[int | None, Trial]]:
    """(rank, trial), best first; rank is 1-based, None for a trial without a value."""
    places = [place(trial, metric, mode) for trial in trials]
    order = sorted(range(len(trials)), key=places.__getitem__)
    return [
        (None if places[position][0] == UNRANKED else rank, trials[position])
        for rank, position in enumerate(order, start=1)
    ]


def with_ranks(job: Mapping[str, Any]) -> dict[str, Any]:
    """`job` as the API shows it: each of its trials with its `rank` (by the
    job's `ranking`); a job without trials as it is."""
    shown = dict(job)
    trials, ranking = job.get("trials"), job.get("ranking")
    if not trials or not ranking:
        return shown
    rank_of = {
        trial["index"]: rank for rank, trial in ranked(trials, ranking["metric"], ranking["mode"])
    }
    shown["trials"] = [{**trial, "rank": rank_of[trial["index"]]} for trial in trials]
    return shown


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
