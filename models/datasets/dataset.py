"""The Dataset type, and the checks that turn any format's raw arrays into one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.datasets.problems import MAX_PROBLEMS, Locate, fail, raise_first, report
from models.errors import InvalidDataset

_MAX_SAMPLE_RANK = 4
_MAX_WHOLE = 2.0**53  # beyond this, float64 cannot tell whole numbers apart


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # float32, shape (rows, *x_shape)
    y: np.ndarray  # 1-D int64/float32/str labels, or 2-D float32 multi-output targets


def finish(x: np.ndarray, y: np.ndarray) -> Dataset:
    if x.ndim == 0 or len(x) == 0 or x.ndim - 1 > _MAX_SAMPLE_RANK or x[0].size == 0:
        fail(
            InvalidDataset,
            ["x"],
            "x has no rows, empty samples or too high a rank",
            f"samples of rank 0 to {_MAX_SAMPLE_RANK}",
            f"shape {list(x.shape)}",
        )
    if y.ndim not in (1, 2) or len(y) != len(x) or 0 in y.shape:
        fail(
            InvalidDataset,
            ["y"],
            "y does not match x",
            f"{len(x)} labels, one per row of x",
            f"shape {list(y.shape)}",
        )
    x32 = checked_float32(x, lambda i: (["x", *i], f"Row {i[0]} of x, at x{list(i)}"))
    if y.dtype.kind != "U":
        y = numeric_labels(y, lambda i: (["y", *i], f"Row {i[0]} of y, at y{list(i)}"))
    return Dataset(x32.reshape(len(x32), -1) if x32.ndim == 1 else x32, y)


def checked_float32(values: np.ndarray, locate: Locate) -> np.ndarray:
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
        result = values.astype(np.float32)
    problems = []
    for index in np.argwhere(~np.isfinite(result))[:MAX_PROBLEMS]:
        loc, place = locate(tuple(int(i) for i in index))
        problems.append(
            report(loc, place, "a finite number within float32 range", values[tuple(index)])
        )
    raise_first(problems)
    return result


def numeric_labels(y: np.ndarray, locate: Locate) -> np.ndarray:
    if y.ndim == 1 and y.dtype.kind in "iub":
        return y.astype(np.int64)
    values = y.astype(np.float64)
    # nan and inf are never whole, so they reach the float32 check and are refused there.
    whole = y.ndim == 1 and np.all((values == np.round(values)) & (np.abs(values) < _MAX_WHOLE))
    return values.astype(np.int64) if whole else checked_float32(values, locate)
