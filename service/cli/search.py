"""A search's or k-fold job's trials as the plain-text leaderboard `fitserve
train` and `fitserve watch` print at its end: in the order of the `rank` the
API gives each trial (models/training/search/ranking.py), never ranked here,
with their parameters, the ranking metric (mean ± std over folds), state and
epochs; with folds, the best trial fold by fold."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

PARAM_WIDTH = 20  # a search's leaderboard cuts a longer parameter value (a string, a list)
# The leaderboard's rows at most: the best of a large search, not a screenful per trial.
LEADERBOARD_ROWS = 30


def leaderboard(job: Mapping[str, Any]) -> str:
    """A finished search or k-fold job as plain text ("" for any other job).

    A search: its trials best first by the `rank` the API gives each (by the
    ranking metric: mean ± std over the folds with `fit.folds`), the best one
    marked; then, with folds, the best trial fold by fold. A k-fold job
    without a search: each metric fold by fold.
    """
    trials = job.get("trials") or []
    if not trials:
        return ""
    metric, mode = ranking_of(job)
    best = job.get("best") or {}
    if not job.get("search"):
        folds = trials[0].get("folds") or best.get("folds") or {}
        return _fold_table(folds, f"{_fold_count(folds)}-fold validation:") if folds else ""
    paths = sorted({path for trial in trials for path in trial.get("params") or {}})
    labels = short_labels(paths)
    header = ["", "rank", "trial", *(labels[path] for path in paths), metric, "state", "epochs"]
    order = by_rank(trials)
    hidden = max(len(order) - LEADERBOARD_ROWS, 0)
    order = order[:LEADERBOARD_ROWS]  # a search of a thousand trials is read from its record
    scores = _on_the_sign([_measure(trial, metric) for trial in order])
    rows = []
    for trial, score in zip(order, scores, strict=True):
        params = trial.get("params") or {}
        rank = trial.get("rank")
        rows.append([
            "*" if trial["index"] == best.get("index") else "",
            "-" if rank is None else str(rank), str(trial["index"]),
            *(_param(params[path]) if path in params else "-" for path in paths),
            score, str(trial.get("state") or "-"), str(trial.get("epochs") or 0),
        ])  # fmt: skip
    numeric = {1, 2, len(header) - 1}
    for column, path in enumerate(paths, start=3):
        if all(_is_number((trial.get("params") or {}).get(path, 0)) for trial in trials):
            numeric.add(column)
    direction = "lowest" if mode == "min" else "highest"
    of_folds = " (the folds' mean)" if any(trial.get("folds") for trial in trials) else ""
    lines = [f"{len(trials)} trials, ranked by {metric}{of_folds}, {direction} first:"]
    lines += _aligned([header, *rows], numeric)
    if hidden:
        lines.append(f"... and {hidden} more trials: every one is in GET /v1/jobs/{job['id']}")
    if best:
        lines.append(f"* best: trial {best['index']}, the one published")
    if best.get("folds"):
        title = f"Trial {best['index']}, {_fold_count(best['folds'])}-fold validation:"
        lines += ["", _fold_table(best["folds"], title)]
    return "\n".join(lines)


def ranking_of(job: Mapping[str, Any]) -> tuple[str, str]:
    """(metric, "min" or "max"): the job's `ranking`, else what its search asks
    for (still queued), else val_loss, lowest first (a k-fold job's)."""
    ranking = job.get("ranking") or {}
    search = job.get("search") or {}
    metric = ranking.get("metric") or search.get("metric") or "val_loss"
    return metric, ranking.get("mode") or search.get("mode") or "min"


def by_rank(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The trials in the order of the `rank` the API gives each (1 the best),
    then those it leaves unranked (null), by index."""
    return sorted(trials, key=lambda trial: (trial.get("rank") is None, trial.get("rank") or 0,
                                             trial["index"]))  # fmt: skip


def short_labels(paths: Sequence[str]) -> dict[str, str]:
    """Each dotted path's last segment, or as many more as tell it apart from
    the others: `layers.0.units` and `layers.1.units` are `0.units`, `1.units`."""
    labels = {}
    for path in paths:
        parts = path.split(".")
        for size in range(1, len(parts) + 1):
            label = ".".join(parts[-size:])
            if not any(other != path and (other == label or other.endswith("." + label))
                       for other in paths):  # fmt: skip
                break
        labels[path] = label
    return labels


def _fold_table(folds: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """Each metric's mean ± std over the folds, then its value on each fold."""
    count = _fold_count(folds)
    header = ["metric", "mean ± std", *(f"fold {j}" for j in range(1, count + 1))]
    scores = _on_the_sign([_mean_std(summary) for summary in folds.values()])
    rows = []
    for (name, summary), score in zip(folds.items(), scores, strict=True):
        values = [number_text(value) for value in summary.get("values") or []]
        rows.append([name, score, *values, *[""] * (count - len(values))])
    return "\n".join([title, *_aligned([header, *rows], set(range(2, count + 2)))])


def _fold_count(folds: Mapping[str, Mapping[str, Any]]) -> int:
    return max((len(summary.get("values") or []) for summary in folds.values()), default=0)


def _measure(trial: Mapping[str, Any], metric: str) -> tuple[str, str | None]:
    """(value, None); with folds, (mean, std)."""
    summary = (trial.get("folds") or {}).get(metric)
    if summary:
        return _mean_std(summary)
    return number_text((trial.get("metrics") or {}).get(metric)), None


def _mean_std(summary: Mapping[str, Any]) -> tuple[str, str]:
    return number_text(summary.get("mean")), number_text(summary.get("std"))


def _on_the_sign(measures: Sequence[tuple[str, str | None]]) -> list[str]:
    """Cells of `mean ± std` with every ± in one column: the means right-aligned."""
    width = max((len(value) for value, _ in measures), default=0)
    return [value.rjust(width) + ("" if std is None else f" ± {std}") for value, std in measures]


def number_text(value: Any) -> str:
    return f"{value:.4g}" if _is_number(value) else "-"


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())  # a newline in a string choice would break the row
    return text if len(text) <= PARAM_WIDTH else text[: PARAM_WIDTH - 3] + "..."


def _aligned(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Rows of cells as lines of columns two spaces apart; numbers right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.rjust(width) if column in right else cell.ljust(width)
                  for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]  # fmt: skip
