"""The Dataset type, and the checks that turn any format's raw arrays into one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.datasets.problems import MAX_PROBLEMS, Locate, fail, raise_first, report
from models.errors import InvalidDataset

_MAX_SAMPLE_RANK = 4
_MAX_WHOLE = 2.0**53  # beyond this, float64 cannot tell whole numbers apart
_SLICE_VALUES = 1 << 20  # values per slice of a check over a whole array


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
    """`values` as float32 (the same array when it is one), or the problems of
    the first values that are not finite there, each placed by `locate`."""
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
        result = values.astype(np.float32, copy=False)
    problems = []
    for index in non_finite(result)[:MAX_PROBLEMS]:
        loc, place = locate(index)
        problems.append(report(loc, place, "a finite number within float32 range", values[index]))
    raise_first(problems)
    return result


def non_finite(values: np.ndarray) -> list[tuple[int, ...]]:
    """The indices of the first MAX_PROBLEMS values that are NaN or infinite,
    in row-major order. Checked a slice of rows at a time: a mask of the whole
    array would cost a quarter of a float32 array more."""
    found: list[tuple[int, ...]] = []
    for start, part in row_slices(values):
        if not np.isfinite(part).all():
            for index in np.argwhere(~np.isfinite(part))[: MAX_PROBLEMS - len(found)]:
                found.append((start + int(index[0]), *(int(i) for i in index[1:])))
            if len(found) >= MAX_PROBLEMS:
                break
    return found


def row_slices(values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(first row, slice) of about a million values each, along the first axis."""
    step = max(1, _SLICE_VALUES // max(1, values[0].size if len(values) else 1))
    return [(start, values[start : start + step]) for start in range(0, len(values), step)]


def numeric_labels(y: np.ndarray, locate: Locate) -> np.ndarray:
    if y.ndim == 1 and y.dtype.kind in "iub":
        return y.astype(np.int64, copy=False)
    values = y.astype(np.float64, copy=False)
    # nan and inf are never whole, so they reach the float32 check and are refused there.
    return values.astype(np.int64) if all_whole(values) else checked_float32(values, locate)


def all_whole(values: np.ndarray) -> bool:
    """True when `values` is 1-D and every value is a whole number float64 tells apart."""
    if values.ndim != 1:
        return False
    return all(
        np.all((part == np.round(part)) & (np.abs(part) < _MAX_WHOLE))
        for _, part in row_slices(values)
    )
