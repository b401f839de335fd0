"""Prediction inputs: TF Serving's row and columnar JSON, CSV and NPY bodies,
turned into one float32 array of the model's input shape, or a 400 that names
the first sample that does not fit.

A request holds at most `max_rows` samples (Settings.limits.max_predict_rows):
counted before the samples are converted (an NPY header says how many, a
JSON list is counted), or as a CSV is read. Large bodies are not copied: an
NPY array is read where it lies in the body, a CSV a piece at a time
(models.serving.csv_samples).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from models.datasets import json_numbers
from models.errors import InvalidSample, MalformedBody, problem, quoted
from models.serving.csv_samples import OverLimit, read_csv

_NPY_HEADER_BYTES = 1 << 16  # numpy reads headers of at most 10,000 bytes
_FINITE_ROWS = 1 << 14  # rows checked at a time: no mask of the whole array


class TooManyRows(InvalidSample):
    """More samples than one request may hold; the API answers 413 (a request
    too large to take, as a body over the upload limit is)."""


def check_rows(rows: int, max_rows: int | None) -> None:
    if max_rows is not None and rows > max_rows:
        raise TooManyRows(
            f"The request holds {rows:,} samples, more than the {max_rows:,} one request may "
            "hold (setting FITSERVE_LIMITS__MAX_PREDICT_ROWS): send them in several "
            f"requests, or store them as a dataset and use :batchPredict. Received: {rows:,} "
            "samples",
            details=[problem([], f"{rows:,} samples, at most {max_rows:,}")],
        )


def from_json_body(
    body: bytes | bytearray,
    input_shape: list[int],
    max_rows: int | None,
    parse: Callable[[bytes | bytearray], Any],
) -> tuple[np.ndarray, str]:
    """Samples from a TF Serving request's body, parsed by `parse`.

    The samples' array is read by models.datasets.json_numbers, without a
    Python object per number, when it is a rectangular array of plain
    numbers of the model's input shape; any other body, and any body that
    does not fit the model, is parsed whole by `parse` (the same answer, and
    the same errors, as before)."""
    fast = json_numbers.loads(body, parse)
    if fast is not None and _take_samples(fast):
        try:
            return from_json(fast.payload, input_shape, max_rows)
        except TooManyRows:
            raise
        except (InvalidSample, MalformedBody):
            pass  # named from the parsed lists below
    del fast
    return from_json(parse(body), input_shape, max_rows)


def _take_samples(fast: json_numbers.Parsed) -> bool:
    payload = fast.payload
    if not isinstance(payload, dict):
        return False
    if "instances" in payload:
        return fast.take(payload, "instances")
    inputs = payload.get("inputs")
    if isinstance(inputs, dict) and len(inputs) == 1:
        return fast.take(inputs, next(iter(inputs)))
    return fast.take(payload, "inputs")


def from_json(
    payload: Any, input_shape: list[int], max_rows: int | None = None
) -> tuple[np.ndarray, str]:
    """Samples from a TF Serving request; returns (x, "row" | "columnar")."""
    if not isinstance(payload, dict) or ("instances" in payload) == ("inputs" in payload):
        raise MalformedBody(
            'A predict request is a JSON object with exactly one of "instances" (row '
            f'format) or "inputs" (columnar format). Received: {_keys(payload)}'
        )
    samples = payload.get("instances", payload.get("inputs"))
    if isinstance(samples, dict) and len(samples) == 1:
        samples = next(iter(samples.values()))
    check_rows(len(samples) if isinstance(samples, list | np.ndarray) else 0, max_rows)
    if "instances" in payload:
        return to_array(payload["instances"], input_shape, "instances"), "row"
    inputs = payload["inputs"]
    if isinstance(inputs, dict):
        # Named columnar inputs: our models have exactly one input.
        if len(inputs) != 1:
            raise MalformedBody(
                f"The model has one input; name it once or send a plain list. "
                f"Received: inputs with keys {quoted(sorted(inputs))}"
            )
        ((name, inputs),) = inputs.items()
        return to_array(inputs, input_shape, "inputs", name), "columnar"
    return to_array(inputs, input_shape, "inputs"), "columnar"


def to_array(samples: Any, input_shape: list[int], *where: str) -> np.ndarray:
    if isinstance(samples, np.ndarray):  # float32 from json_numbers: finite, not empty
        if samples.shape[1:] != tuple(input_shape):
            raise InvalidSample("Not the model's input shape: named from the parsed lists")
        return samples
    if not isinstance(samples, list) or not samples:
        raise MalformedBody(
            f"{'.'.join(where)} must be a non-empty list of samples. Received: "
            f"{type(samples).__name__}"
        )
    array = _numeric_array(samples)
    if array is None or array.shape[1:] != tuple(input_shape):
        _raise_bad_sample(samples, input_shape, list(where))
    assert array is not None
    if not np.isfinite(array).all():
        index = int(np.argwhere(~np.isfinite(array))[0][0])
        raise InvalidSample(
            f"Sample {index} holds NaN or infinity; expected finite numbers. "
            f"Received: {_short(samples[index])}",
            details=[problem([*where, index], "not finite")],
        )
    return array


def from_npy(
    body: bytes | bytearray, input_shape: list[int], max_rows: int | None = None
) -> np.ndarray:
    """The body's array, read where it lies in the body (no copy when it holds
    float32) once its header has been checked."""
    try:
        shape, fortran_order, dtype, offset = _npy_header(body)
    except (ValueError, OSError, EOFError) as exc:
        raise MalformedBody(f"The body is not a readable .npy array. Received: {exc}") from None
    if dtype.kind not in "iuf" or tuple(shape[1:]) != tuple(input_shape) or not shape:
        raise InvalidSample(
            f"The array must be numeric with shape [rows, {', '.join(map(str, input_shape))}]. "
            f"Received: dtype {dtype}, shape {list(shape)}"
        )
    check_rows(shape[0], max_rows)
    array = np.frombuffer(body, dtype, count=int(np.prod(shape)), offset=offset)
    array = array.reshape(shape, order="F" if fortran_order else "C")
    return _finite(array.astype(np.float32, copy=False))


def from_csv(
    body: bytes | bytearray, input_shape: list[int], max_rows: int | None = None
) -> np.ndarray:
    try:
        x = read_csv(body, input_shape, max_rows)
    except OverLimit as over:
        check_rows(over.rows, max_rows)
        raise AssertionError("OverLimit below the limit") from None
    return x.reshape(-1, *input_shape)


def _npy_header(body: bytes | bytearray) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, Fortran order, dtype, where the data starts). A header that
    declares more bytes than the body has is refused before anything is
    allocated (a 100-byte body can declare terabytes: a MemoryError, not a 400)."""
    stream = io.BytesIO(bytes(memoryview(body)[:_NPY_HEADER_BYTES]))
    if np.lib.format.read_magic(stream) == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > len(body) - stream.tell():
        raise ValueError(
            f"the header declares shape {list(shape)} of {dtype} ({declared:,} bytes), "
            f"but only {len(body) - stream.tell():,} bytes of data follow it"
        )
    if dtype.hasobject:
        raise ValueError(f"it holds Python objects (dtype {dtype}), which are never unpickled")
    return shape, fortran_order, dtype, stream.tell()


def _finite(array: np.ndarray) -> np.ndarray:
    for start in range(0, len(array), _FINITE_ROWS):
        part = array[start : start + _FINITE_ROWS]
        if not np.isfinite(part).all():
            index = start + int(np.argwhere(~np.isfinite(part))[0][0])
            raise InvalidSample(f"Sample {index} holds NaN or infinity; expected finite numbers.")
    return array


def _numeric_array(values: Any) -> np.ndarray | None:
    """float32 array of `values`, or None when ragged or not all numbers.

    Converted without a dtype first: asking numpy for float32 directly would
    also accept strings such as "1.5", and null would pass as NaN."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        return None
    if array.dtype.kind not in "iuf":
        return None
    return array.astype(np.float32, copy=False)


def _raise_bad_sample(samples: list[Any], input_shape: list[int], where: list[str]) -> None:
    for index, sample in enumerate(samples):
        array = _numeric_array(sample)
        shape = None if array is None else list(array.shape)
        if shape != input_shape:
            found = "non-numeric or ragged values" if shape is None else f"shape {shape}"
            message = (
                f"Sample {index} of {'.'.join(where)} has {found}; expected shape {input_shape}. "
                f"Received: {_short(sample)}"
            )
            raise InvalidSample(message, details=[problem([*where, index], message)])
    raise InvalidSample(f"The samples do not form an array of shape [rows, *{input_shape}].")


def _keys(payload: Any) -> str:
    return (
        f"keys {quoted(sorted(payload))}" if isinstance(payload, dict) else type(payload).__name__
    )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
