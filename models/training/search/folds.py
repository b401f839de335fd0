"""k-fold validation: which rows each fold trains and validates on, and how a
metric measured on every fold is summarized."""

from __future__ import annotations

import numpy as np

from models.training.spec import MAX_FOLDS, MIN_FOLDS


def fold_rows(rows: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training row indices, validation row indices) of each of `k` folds of
    `rows` rows: fold j validates on block j of one permutation of the rows,
    cut into `k` near-equal contiguous blocks (np.array_split's sizes), and
    trains on the other blocks.

    The permutation's seed is fixed, so every trial of a search is scored on
    the same folds (their scores compare) and a job is reproducible. Each
    array is sorted: a fit that does not shuffle sees its rows in the
    dataset's order, as it would train on the dataset alone.
    """
    if not MIN_FOLDS <= k <= MAX_FOLDS:
        raise ValueError(f"Folds are {MIN_FOLDS} to {MAX_FOLDS}. Received: k={k}")
    if rows < k:
        raise ValueError(
            f"Each of {k} folds validates on at least one row. Received: rows={rows}, k={k}"
        )
    blocks = np.array_split(np.random.default_rng(0).permutation(rows), k)
    return [
        (np.sort(np.concatenate(blocks[:fold] + blocks[fold + 1 :])), np.sort(block))
        for fold, block in enumerate(blocks)
    ]


def fold_summary(values: list[float]) -> dict[str, float | list[float]]:
    """One metric over the folds: its mean, which ranks trials, its spread
    (population std: the folds are all there is, not a sample of them),
    which says how much that mean is worth, and the values themselves.
    Plain floats, so the summary goes into JSON as it is."""
    array = np.asarray(values, dtype="float64")
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "values": [float(value) for value in values],
    }


def merge_fold_logs(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """One epoch's logs of a trial trained on every fold: each metric's mean
    over the folds under its own name (what ranks and halves trials, and reads
    like a single fit's logs), then each fold's under `f{j}:{name}`, j from 1."""
    merged = {
        name: float(np.mean([logs[name] for logs in per_fold], dtype="float64"))
        for name in per_fold[0]
    }
    for fold, logs in enumerate(per_fold, start=1):
        merged.update({f"f{fold}:{name}": value for name, value in logs.items()})
    return merged
