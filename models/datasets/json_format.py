"""JSON bodies: an object whose "x" holds (nested) number lists and whose "y" holds the labels."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from models.datasets import json_numbers
from models.datasets.problems import MAX_PROBLEMS, fail, raise_first, report
from models.errors import InvalidDataset, MalformedBody

_JSON_SHAPE = 'a JSON object {"x": [...], "y": [...]}'
# Deeper than any sample (rank 0 to 4) or label (a number list) nests. The shape
# checks below recurse once per level, so lists nested a few hundred deep, which
# json.loads still reads, would otherwise exhaust Python's stack.
_MAX_NESTING = 4


def parse_json(body: bytes | bytearray) -> tuple[np.ndarray, np.ndarray]:
    fast = json_numbers.loads(body, json.loads)  # x without a Python object per number
    if fast is not None and isinstance(fast.payload, dict) and fast.take(fast.payload, "x"):
        data = fast.payload
    else:
        del fast
        data = _load(body)
    if not isinstance(data, dict):
        fail(
            MalformedBody,
            [],
            "The JSON body is not an object",
            _JSON_SHAPE,
            type(data).__name__,
        )
    for key in ("x", "y"):
        if not isinstance(data.get(key), list | np.ndarray):
            fail(
                MalformedBody,
                [key],
                f"The JSON body has no {key!r} array",
                _JSON_SHAPE,
                f"{type(data.get(key)).__name__} for {key!r}",
            )
    return _json_x(data["x"]), _json_y(data["y"])


def _load(body: bytes | bytearray) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad syntax or encoding, or nested too deep
        fail(MalformedBody, [], "The body is not valid JSON", _JSON_SHAPE, exc)


def _json_x(x: list[Any] | np.ndarray) -> np.ndarray:
    if isinstance(x, np.ndarray):  # float32 from json_numbers
        return x
    try:
        array = np.asarray(x)
        if array.dtype.kind in "iuf":
            return array
    except ValueError:  # numpy refuses ragged nesting
        pass
    _refuse_deep_nesting(x, "x")
    problems = []
    first = _nested_shape(x[0])
    for i, sample in enumerate(x):
        if (shape := _nested_shape(sample)) is None or shape != first:
            problems.append(
                report(
                    ["x", i],
                    f"Sample {i} of x is shaped unlike the others",
                    f"the shape of sample 0, {_shape_text(first)}"
                    if i and first is not None
                    else "nested lists of equal lengths",
                    _shape_text(shape),
                )
            )
        elif bad := _non_number(sample):
            problems.append(
                report(
                    ["x", i],
                    f"Sample {i} of x holds a non-number",
                    "numbers only",
                    repr(bad[0]),
                )
            )
        if len(problems) >= MAX_PROBLEMS:
            break
    raise_first(problems)
    fail(
        InvalidDataset,
        ["x"],
        "x cannot be read as numbers",
        "numbers within float range",
        "values numpy cannot convert",
    )


def _refuse_deep_nesting(values: list[Any], key: str) -> None:
    for i, value in enumerate(values):
        if _nested_deeper_than(value, _MAX_NESTING):
            fail(
                InvalidDataset,
                [key, i],
                f"{'Sample' if key == 'x' else 'Label'} {i} of {key} nests lists more than "
                f"{_MAX_NESTING} deep",
                "samples of rank 0 to 4" if key == "x" else "a number, string or number list",
                f"lists nested more than {_MAX_NESTING} deep",
            )


def _nested_deeper_than(value: Any, levels: int) -> bool:
    if not isinstance(value, list):
        return False
    return levels == 0 or any(_nested_deeper_than(item, levels - 1) for item in value)


def _nested_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of nested lists: () for a scalar, None when ragged."""
    if not isinstance(value, list):
        return ()
    shapes = {_nested_shape(item) for item in value}
    inner = shapes.pop() if len(shapes) == 1 else () if not shapes else None
    return None if inner is None else (len(value), *inner)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "ragged nested lists" if shape is None else f"shape {list(shape)}"


def _non_number(value: Any) -> tuple[Any] | None:
    if isinstance(value, list):
        return next(filter(None, map(_non_number, value)), None)
    # bool is an int subclass, but true/false among features is almost always a mistake.
    return None if isinstance(value, int | float) and not isinstance(value, bool) else (value,)


def _json_y(y: list[Any]) -> np.ndarray:
    _refuse_deep_nesting(y, "y")
    expected = _label_kind(y[0]) if y else "a number"
    for i, value in enumerate(y):
        if (kind := _label_kind(value)) is None or kind != expected:
            fail(
                InvalidDataset,
                ["y", i],
                f"Label {i} of y is not valid",
                f"{expected}, like label 0" if expected else "a number, string or number list",
                repr(value),
            )
    return np.array(y, dtype=str if expected == "a string" else np.float64)


def _label_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "a string"
    shape = _nested_shape(value)
    if _non_number(value) or shape is None or len(shape) > 1 or shape == (0,):
        return None
    return f"a list of {shape[0]} numbers" if shape else "a number"
