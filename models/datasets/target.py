"""Describing a dataset's target: binary or categorical classes with counts, or numeric stats."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.records import TargetKind, TargetSummary

_MAX_CLASSES = 50


def describe_target(y: np.ndarray) -> TargetSummary:
    if y.dtype.kind in "US":
        classes, counts = np.unique(y, return_counts=True)
        kind: TargetKind = "binary" if len(classes) == 2 else "categorical"
        return _class_summary(kind, [str(c) for c in classes], counts)
    values = y.astype(np.float64)
    if y.ndim == 1 and np.all(values == np.round(values)):
        classes, counts = np.unique(values, return_counts=True)
        if len(classes) == 2 or 3 <= len(classes) <= min(_MAX_CLASSES, len(y) / 2):
            kind = "binary" if len(classes) == 2 else "categorical"
            return _class_summary(kind, [int(c) for c in classes], counts)
    empty = values.size == 0  # never stored, but describe_target is public
    return {
        "kind": "numeric",
        "classes": [],
        "counts": {},
        "min": None if empty else float(values.min()),
        "max": None if empty else float(values.max()),
        "mean": None if empty else float(values.mean()),
        "outputs": 1 if y.ndim == 1 else int(y.shape[1]),
    }


def _class_summary(kind: TargetKind, classes: list[Any], counts: np.ndarray) -> TargetSummary:
    return {
        "kind": kind,
        "classes": classes,
        "counts": {str(c): int(n) for c, n in zip(classes, counts, strict=True)},
    }
