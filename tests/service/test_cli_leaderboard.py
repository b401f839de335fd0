"""`fitserve train`'s leaderboard of a search or k-fold job, from hand-made
job records (the shape GET /v1/jobs/{id} answers)."""

from __future__ import annotations

from typing import Any

from models.training.search.ranking import ranked, with_ranks
from service.cli.jobs import _entry_logs
from service.cli.search import LEADERBOARD_ROWS, leaderboard, short_labels

LEARNING_RATE = "compile.optimizer.learning_rate"


def trial(index: int, value: float | None, state: str = "succeeded", epochs: int = 10,
          **params: Any) -> dict[str, Any]:  # fmt: skip
    metrics = {} if value is None else {"loss": 0.1, "val_accuracy": value}
    return {"index": index, "params": {LEARNING_RATE: 0.01 * (index + 1), **params},
            "metrics": metrics, "state": state, "epochs": epochs, "group": 0}  # fmt: skip


def search_job(trials: list[dict[str, Any]], mode: str, best: int | None) -> dict[str, Any]:
    by_index = {each["index"]: each for each in trials}
    return with_ranks({
        "id": "job", "model": "iris", "state": "succeeded",
        "search": {"trials": len(trials), "method": "random", "metric": None, "mode": None},
        "ranking": {"metric": "val_accuracy", "mode": mode},
        "trials": trials,
        "best": None if best is None else {"index": best, **by_index[best]},
    })  # fmt: skip


def table_rows(text: str) -> list[list[str]]:
    """The leaderboard's body rows, split into cells (no cell holds a space here)."""
    lines = text.splitlines()
    return [line.split() for line in lines[2 : 2 + len(lines) - 3]]


def test_max_mode_ranks_the_highest_first_and_marks_the_best() -> None:
    trials = [trial(0, 0.81), trial(1, 0.95), trial(2, 0.90)]
    text = leaderboard(search_job(trials, "max", best=1))
    lines = text.splitlines()
    assert lines[0] == "3 trials, ranked by val_accuracy, highest first:"
    assert lines[1].split() == ["rank", "trial", "learning_rate", "val_accuracy", "state",
                                "epochs"]  # fmt: skip
    assert [row[:3] for row in table_rows(text)] == [["*", "1", "1"], ["2", "2", "0.03"],
                                                     ["3", "0", "0.01"]]  # fmt: skip
    assert lines[-1] == "* best: trial 1, the one published"
    # Columns line up: every row as long as the header, numbers right-aligned.
    body = lines[1:-1]
    assert len({len(line) for line in body}) == 1, body
    assert {line.index("epochs") + len("epochs") for line in lines[1:2]} == {len(body[0])}


def test_min_mode_ranks_the_lowest_first() -> None:
    trials = [trial(0, 0.81), trial(1, 0.95), trial(2, 0.90)]
    order = [each["index"] for _, each in ranked(trials, "val_accuracy", "min")]
    assert order == [0, 2, 1]
    order = [each["index"] for _, each in ranked(trials, "val_accuracy", "max")]
    assert order == [1, 2, 0]


def test_stopped_trials_rank_after_the_finished_ones_later_rungs_first() -> None:
    # A trial halving stopped early may score better on its short run: it still
    # ranks below every trial that ran to its end, as the published best does.
    trials = [
        trial(0, 0.70),
        trial(1, 0.99, state="stopped", epochs=3),
        trial(2, 0.80, state="stopped", epochs=9),
        trial(3, None, state="failed"),
        trial(4, None, state="queued", epochs=0),
        trial(5, 0.75),
    ]
    places = [(rank, each["index"]) for rank, each in ranked(trials, "val_accuracy", "max")]
    assert places == [(1, 5), (2, 0), (3, 2), (4, 1), (None, 3), (None, 4)]
    rows = table_rows(leaderboard(search_job(trials, "max", best=5)))
    assert [row[-2:] for row in rows] == [["succeeded", "10"], ["succeeded", "10"],
                                          ["stopped", "9"], ["stopped", "3"],
                                          ["failed", "10"], ["queued", "0"]]  # fmt: skip
    assert rows[-1][:2] == ["-", "4"] and rows[-1][3] == "-"  # unranked, no value


def test_nan_and_missing_metrics_are_not_ranked() -> None:
    trials = [trial(0, float("nan")), trial(1, 0.5)]
    places = [(rank, each["index"]) for rank, each in ranked(trials, "val_accuracy", "max")]
    assert places == [(1, 1), (None, 0)]


def test_folds_show_mean_and_std_and_the_best_trial_fold_by_fold() -> None:
    folds = {"val_accuracy": {"mean": 0.9, "std": 0.0125, "values": [0.8875, 0.9125]},
             "loss": {"mean": 0.25, "std": 0.05, "values": [0.2, 0.3]}}  # fmt: skip
    trials = [{**trial(0, 0.9), "folds": folds}, {**trial(1, 0.8), "folds": {
        "val_accuracy": {"mean": 0.8, "std": 0.1, "values": [0.7, 0.9]}}}]  # fmt: skip
    text = leaderboard(search_job(trials, "max", best=0))
    assert text.splitlines()[0] == (
        "2 trials, ranked by val_accuracy (the folds' mean), highest first:"
    )
    assert "0.9 ± 0.0125" in text.splitlines()[2] and "0.8 ± 0.1" in text.splitlines()[3]
    fold_part = text.split("\n\n")[1].splitlines()
    assert fold_part[0] == "Trial 0, 2-fold validation:"
    assert fold_part[1].split() == ["metric", "mean", "±", "std", "fold", "1", "fold", "2"]
    assert fold_part[2].split() == ["val_accuracy", "0.9", "±", "0.0125", "0.8875", "0.9125"]
    assert fold_part[3].split() == ["loss", "0.25", "±", "0.05", "0.2", "0.3"]


def test_a_fold_job_without_a_search_prints_each_metric_fold_by_fold() -> None:
    folds = {"val_loss": {"mean": 0.45, "std": 0.02, "values": [0.43, 0.47, 0.45]}}
    job = {
        "state": "succeeded", "search": None, "ranking": {"metric": "val_loss", "mode": "min"},
        "trials": [{"index": 0, "params": {}, "metrics": {"val_loss": 0.45}, "folds": folds,
                    "state": "succeeded", "epochs": 5, "group": 0}],
        "best": {"index": 0, "params": {}, "metrics": {"val_loss": 0.45}, "folds": folds},
    }  # fmt: skip
    assert leaderboard(job).splitlines() == [
        "3-fold validation:",
        "metric    mean ± std   fold 1  fold 2  fold 3",
        "val_loss  0.45 ± 0.02    0.43    0.47    0.45",
    ]


def test_string_params_are_shown_as_they_are_and_long_ones_cut() -> None:
    trials = [
        trial(0, 0.9, **{"compile.optimizer.name": "<b>x</b>"}),
        trial(1, 0.8, **{"compile.optimizer.name": "a-choice-of-sixty-four-characters-at-most"}),
        trial(2, 0.7, **{"compile.optimizer.name": "two\nlines"}),
    ]
    rows = table_rows(leaderboard(search_job(trials, "max", best=0)))
    assert [row[4] if row[0] == "*" else row[3] for row in rows] == [
        "<b>x</b>", "a-choice-of-sixty...", "two",
    ]  # fmt: skip
    assert rows[2][4] == "lines"  # a newline in a value does not break the row


def test_parameter_labels_are_the_shortest_distinct_suffix() -> None:
    paths = [LEARNING_RATE, "layers.0.units", "layers.2.units", "seed", "layers.1.rate"]
    assert short_labels(paths) == {
        LEARNING_RATE: "learning_rate", "layers.0.units": "0.units",
        "layers.2.units": "2.units", "seed": "seed", "layers.1.rate": "rate",
    }  # fmt: skip


def test_a_plain_job_has_no_leaderboard() -> None:
    assert leaderboard({"state": "succeeded", "metrics": {"loss": 0.1}}) == ""
    assert leaderboard({"state": "queued", "search": {"trials": 4}, "trials": None}) == ""


def test_a_search_epoch_shows_the_spread_of_the_ranking_metric_over_its_group() -> None:
    job = {"search": {"trials": 3}, "ranking": {"metric": "val_loss", "mode": "min"}}
    entry = {"epoch": 4, "group": 1, "2:loss": 0.3, "2:val_loss": 0.5, "3:val_loss": 0.25,
             "3:f1:val_loss": 0.01, "3:loss": 0.2}  # fmt: skip
    assert _entry_logs(entry, job) == "group 1  val_loss 0.25..0.5"
    refit = {"epoch": 2, "group": "refit", "refit:loss": 0.125}  # no validation rows in a refit
    assert _entry_logs(refit, job) == "group refit  loss 0.125"
    assert _entry_logs({"loss": 0.5, "accuracy": 0.75}, {}) == "loss 0.5  accuracy 0.75"


def test_a_large_search_prints_its_best_rows_and_says_how_many_more() -> None:
    trials = [
        {"index": index, "params": {"seed": index}, "metrics": {"val_loss": 1.0 / (index + 1)},
         "state": "succeeded", "epochs": 3}
        for index in range(100)
    ]  # fmt: skip
    job = {"id": "f" * 32, "search": {"trials": 100}, "trials": trials,
           "ranking": {"metric": "val_loss", "mode": "min"}, "best": {"index": 99}}  # fmt: skip
    text = leaderboard(with_ranks(job))  # each trial's rank, as the API shows it
    assert f"... and {100 - LEADERBOARD_ROWS} more trials" in text and "f" * 32 in text
    lines = text.splitlines()
    assert lines[2].split()[:3] == ["*", "1", "99"]  # under the title and header: the best
    assert len(lines) == 2 + LEADERBOARD_ROWS + 2
