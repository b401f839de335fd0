"""The one order of a search's trials (models.training.search.ranking): the
worker's `better`, the API's `rank` on each trial, and where ties, missing
values and trials halving stopped are placed."""

from __future__ import annotations

import math
from typing import Any

from models.training.search.ranking import better, ranked, with_ranks
from worker import group_jobs, search_coordinator


def trial(index: int, value: Any, state: str = "succeeded", **fields: Any) -> dict[str, Any]:
    metrics = {} if value is None else {"val_loss": value}
    return {"index": index, "metrics": metrics, "state": state, "epochs": 10, **fields}


def places(trials: list[dict[str, Any]], mode: str = "min") -> list[tuple[int | None, int]]:
    return [(rank, each["index"]) for rank, each in ranked(trials, "val_loss", mode)]


def test_better_is_strict_and_never_prefers_nan() -> None:
    assert better("min", 0.1, None) and better("min", 0.1, 0.2) and not better("min", 0.2, 0.1)
    assert better("max", 0.2, 0.1) and not better("max", 0.1, 0.2)
    assert not better("min", 0.1, 0.1)  # a tie keeps the first best
    assert not better("min", math.nan, None) and better("min", 0.5, math.nan)
    # The rule the worker picks its published trial by.
    assert group_jobs.better is better and search_coordinator.better is better


def test_ties_go_to_the_earlier_group_then_the_earlier_trial() -> None:
    trials = [trial(0, 0.5, group=1), trial(1, 0.5, group=0), trial(2, 0.5, group=1),
              trial(3, 0.4, group=1)]  # fmt: skip
    assert places(trials) == [(1, 3), (2, 1), (3, 0), (4, 2)]


def test_missing_nan_non_numbers_and_failed_trials_are_unranked_by_index() -> None:
    trials = [trial(4, math.nan), trial(3, 0.2, state="failed"), trial(2, None, state="queued"),
              trial(1, True), trial(0, "0.1"), trial(5, 0.9)]  # fmt: skip
    assert places(trials) == [(1, 5), (None, 0), (None, 1), (None, 2), (None, 3), (None, 4)]


def test_infinity_ranks_as_a_value_as_the_worker_ranks_it() -> None:
    trials = [trial(0, math.inf), trial(1, None), trial(2, 0.3)]
    assert places(trials) == [(1, 2), (2, 0), (None, 1)]
    assert better("min", math.inf, None)


def test_halving_stopped_trials_follow_the_finished_ones_the_later_rung_first() -> None:
    trials = [
        trial(0, 0.9),
        trial(1, 0.1, state="stopped", epochs=2),
        trial(2, 0.3, state="stopped", epochs=6),
        trial(3, 0.2, state="stopped", epochs=6),
        trial(4, 0.5, state="running"),
    ]
    assert places(trials) == [(1, 4), (2, 0), (3, 3), (4, 2), (5, 1)]
    assert places(trials, "max") == [(1, 0), (2, 4), (3, 2), (4, 3), (5, 1)]


def test_with_ranks_puts_a_rank_on_each_trial_and_keeps_the_record() -> None:
    trials = [trial(0, 0.8), trial(1, None, state="failed"), trial(2, 0.6)]
    job = {"id": "job", "ranking": {"metric": "val_loss", "mode": "min"}, "trials": trials}
    shown = with_ranks(job)
    assert [each["rank"] for each in shown["trials"]] == [2, None, 1]
    assert [each["index"] for each in shown["trials"]] == [0, 1, 2]  # in the record's order
    assert "rank" not in trials[0] and shown["id"] == "job"
    assert with_ranks({"id": "plain", "metrics": {}}) == {"id": "plain", "metrics": {}}
