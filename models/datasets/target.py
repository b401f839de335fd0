"""Describing a dataset's target: binary or categorical classes with counts, or numeric stats."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.datasets.dataset import row_slices
from models.records import TargetKind, TargetSummary

_MAX_CLASSES = 50


def describe_target(y: np.ndarray) -> TargetSummary:
    if y.dtype.kind in "US":
        classes, counts = np.unique(y, return_counts=True)
        kind: TargetKind = "binary" if len(classes) == 2 else "categorical"
        return _class_summary(kind, [str(c) for c in classes], counts)
    found = _few_whole_classes(y)
    if found is not None:
        whole, tally = found
        if len(whole) == 2 or 3 <= len(whole) <= min(_MAX_CLASSES, len(y) / 2):
            kind = "binary" if len(whole) == 2 else "categorical"
            return _class_summary(kind, [int(c) for c in whole], np.array(tally))
    empty = y.size == 0  # never stored, but describe_target is public
    # Reduced in float64 without a float64 copy of y: numpy casts a buffer at a time.
    return {
        "kind": "numeric",
        "classes": [],
        "counts": {},
        "min": None if empty else float(y.min()),
        "max": None if empty else float(y.max()),
        "mean": None if empty else float(y.mean(dtype=np.float64)),
        "outputs": 1 if y.ndim == 1 else int(y.shape[1]),
    }


def _few_whole_classes(y: np.ndarray) -> tuple[list[float], list[int]] | None:
    """The distinct values of a 1-D y of whole numbers and their counts, or None
    when y is not that or has more than _MAX_CLASSES of them (then it is
    numeric whatever they are). Counted a slice at a time, so that no copy or
    sort of the whole of y is made."""
    if y.ndim != 1:
        return None
    counts: dict[float, int] = {}
    for _, part in row_slices(y):
        values = part.astype(np.float64)
        if not np.all(values == np.round(values)):
            return None
        for value, count in zip(*np.unique(values, return_counts=True), strict=True):
            counts[float(value)] = counts.get(float(value), 0) + int(count)
        if len(counts) > _MAX_CLASSES:
            return None
    whole = sorted(counts)
    return whole, [counts[value] for value in whole]


def _class_summary(kind: TargetKind, classes: list[Any], counts: np.ndarray) -> TargetSummary:
    return {
        "kind": kind,
        "classes": classes,
        "counts": {str(c): int(n) for c, n in zip(classes, counts, strict=True)},
    }
