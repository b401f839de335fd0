"""Prediction inputs: TF Serving's row and columnar JSON, CSV and NPY bodies,
turned into one float32 array of the model's input shape, or a 400 that names
the first sample that does not fit."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from models.errors import InvalidSample, MalformedBody, problem


def from_json(payload: Any, input_shape: list[int]) -> tuple[np.ndarray, str]:
    """Samples from a TF Serving request; returns (x, "row" | "columnar")."""
    if not isinstance(payload, dict) or ("instances" in payload) == ("inputs" in payload):
        raise MalformedBody(
            'A predict request is a JSON object with exactly one of "instances" (row '
            f'format) or "inputs" (columnar format). Received: {_keys(payload)}'
        )
    if "instances" in payload:
        return to_array(payload["instances"], input_shape, "instances"), "row"
    inputs = payload["inputs"]
    if isinstance(inputs, dict):
        # Named columnar inputs: our models have exactly one input.
        if len(inputs) != 1:
            raise MalformedBody(
                f"The model has one input; name it once or send a plain list. "
                f"Received: inputs with keys {sorted(inputs)}"
            )
        ((name, inputs),) = inputs.items()
        return to_array(inputs, input_shape, "inputs", name), "columnar"
    return to_array(inputs, input_shape, "inputs"), "columnar"


def to_array(samples: Any, input_shape: list[int], *where: str) -> np.ndarray:
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


def from_npy(body: bytes, input_shape: list[int]) -> np.ndarray:
    try:
        _refuse_missing_data(body)
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MalformedBody(f"The body is not a readable .npy array. Received: {exc}") from None
    if array.dtype.kind not in "iuf" or array.shape[1:] != tuple(input_shape):
        raise InvalidSample(
            f"The array must be numeric with shape [rows, {', '.join(map(str, input_shape))}]. "
            f"Received: dtype {array.dtype}, shape {list(array.shape)}"
        )
    return _finite(array.astype(np.float32, copy=False))


def from_csv(body: bytes, input_shape: list[int]) -> np.ndarray:
    features = int(np.prod(input_shape))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("The CSV body is not UTF-8 text.") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not _is_numeric_row(lines[0]):
        lines = lines[1:]  # a header row
    rows = []
    for index, line in enumerate(lines):
        fields = line.split(",")
        if len(fields) != features or not _is_numeric_row(line):
            raise InvalidSample(
                f"Sample {index} must be {features} comma-separated numbers (the model's "
                f"input shape {input_shape}). Received: {_short(line)}",
                details=[problem([index], "wrong sample")],
            )
        rows.append([float(field) for field in fields])
    if not rows:
        raise MalformedBody("The CSV body holds no samples.")
    return _finite(np.asarray(rows, dtype=np.float32).reshape(-1, *input_shape))


def _refuse_missing_data(body: bytes) -> None:
    """A .npy body holds its data uncompressed after the header, so a header that
    declares more bytes than the body has is refused before numpy allocates them
    (a 100-byte body can declare terabytes: a MemoryError, not a 400)."""
    stream = io.BytesIO(body)
    if np.lib.format.read_magic(stream) == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > len(body) - stream.tell():
        raise ValueError(
            f"the header declares shape {list(shape)} of {dtype} ({declared:,} bytes), "
            f"but only {len(body) - stream.tell():,} bytes of data follow it"
        )


def _finite(array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        index = int(np.argwhere(~np.isfinite(array))[0][0])
        raise InvalidSample(f"Sample {index} holds NaN or infinity; expected finite numbers.")
    return array


def _is_numeric_row(line: str) -> bool:
    try:
        [float(field) for field in line.split(",")]
    except ValueError:
        return False
    return True


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
    return f"keys {sorted(payload)}" if isinstance(payload, dict) else type(payload).__name__


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
