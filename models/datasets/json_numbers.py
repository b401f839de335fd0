"""A fast path for the one large array of numbers in a JSON body.

A JSON parser makes a Python object per number (32 bytes where float32 holds
4). `loads` finds the body's longest run of number text and, when it is one
rectangular array of plain JSON numbers, reads it a piece (about 1 MiB of
text) at a time: the brackets give the shape, and orjson reads each piece's
numbers as one flat list, cast at once to float32, as the ordinary parser's
would be. The rest of the body, with a marker where the array was, goes to
the ordinary parser. Anything else (strings, null, NaN, ragged rows, a value
beyond float32, an integer of 2**53 or more, which int64 and float64 round
to float32 differently) makes `loads` answer None, and the caller parses
the body as usual, so its errors are unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

# Smaller arrays go to the ordinary parser: it is faster (bench/RESULTS.md), and
# the Python float per number it makes (~8x the text's bytes) stays inside the
# fixed 256 MiB of the memory bound (docs/reliability.md) below this size.
MIN_BYTES = 16 << 20
_PIECE_BYTES = 1 << 20  # text parsed at a time
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_EXACT = 2.0**53  # below it, int -> float64 -> float32 rounds as int -> float32

_WHITESPACE = b" \t\n\r"
_NUMBER_CHARS = b"0123456789+-.eE"
# A piece less its numbers and whitespace: its brackets and commas, and
# whatever else it holds (then it is no array of plain numbers).
_NOT_STRUCTURE = _NUMBER_CHARS + _WHITESPACE
_UNBRACKET = bytes(ord(" ") if byte in b"[]" else byte for byte in range(256))
# Bytes that may be in the array's run: whatever else is "x".
_IN_RUN = bytes(
    ord("a") if byte in _NUMBER_CHARS + _WHITESPACE + b"[]," else ord("x") for byte in range(256)
)
_SCAN_BYTES = 1 << 20


@dataclass
class Parsed:
    """The body parsed with its large array set apart: `payload` holds the
    string `marker` where the array was."""

    payload: Any
    array: np.ndarray  # float32, the array's nested shape
    marker: str

    def take(self, container: Any, key: Any) -> bool:
        """Put the array in place of the marker at container[key]; False when
        the marker is not there (the array was somewhere else in the body)."""
        try:
            found = container[key]
        except (KeyError, IndexError, TypeError):
            return False
        if not (isinstance(found, str) and found == self.marker):
            return False
        container[key] = self.array
        return True


def loads(
    body: bytes | bytearray,
    parse: Callable[[bytes | bytearray], Any],
    min_bytes: int | None = None,
) -> Parsed | None:
    """The body parsed by `parse` with its large numeric array set apart, or
    None when it has none that the fast path reads (then parse the body).
    `min_bytes`: the smallest array taken (default MIN_BYTES, read per call)."""
    if min_bytes is None:
        min_bytes = MIN_BYTES
    if len(body) < min_bytes:
        return None
    span = _longest_run(body)
    if span is None or span[1] - span[0] < min_bytes:
        return None
    start, end = span
    array = numeric_array(memoryview(body)[start:end])
    if array is None:
        return None
    marker = f"fitserve-numbers-{secrets.token_hex(16)}"
    rest = bytearray(memoryview(body)[:start])
    rest += b'"' + marker.encode() + b'"'
    rest += memoryview(body)[end:]
    try:
        payload = parse(rest)
    except Exception:  # the array was inside a string, or the body is not JSON
        return None
    return Parsed(payload, array, marker)


def _longest_run(body: bytes | bytearray) -> tuple[int, int] | None:
    """(start, end) of the longest run of number text, from its first '[' to its last ']'."""
    best = (0, 0)
    run_start = 0  # where the run that reaches the current piece starts
    for offset in range(0, len(body), _SCAN_BYTES):
        marks = bytes(memoryview(body)[offset : offset + _SCAN_BYTES]).translate(_IN_RUN)
        if b"x" not in marks:
            continue  # the run goes on through this piece
        others = np.flatnonzero(np.frombuffer(marks, np.uint8) == ord("x")) + offset
        starts = np.concatenate(([run_start], others + 1))
        ends = np.concatenate((others, [len(body)]))
        lengths = ends[:-1] - starts[:-1]  # the runs this piece ends
        longest = int(np.argmax(lengths))
        if lengths[longest] > best[1] - best[0]:
            best = (int(starts[longest]), int(ends[longest]))
        run_start = int(starts[-1])
    if len(body) - run_start > best[1] - best[0]:
        best = (run_start, len(body))
    start = body.find(b"[", best[0], best[1])
    end = body.rfind(b"]", best[0], best[1]) + 1
    return (start, end) if 0 <= start < end else None


def numeric_array(text: memoryview) -> np.ndarray | None:
    """The float32 array that `text` (a JSON array) holds, or None when it is
    not a rectangular array of plain numbers that the fast path takes."""
    skeleton: list[bytes] = []  # the brackets and commas
    pieces: list[np.ndarray] = []
    start = 0
    # Integers of 2**53 or more round to float32 through float64 (as here)
    # unlike directly from int64, which is how a parser's all-integer array goes.
    integers, large = True, False
    while start < len(text):
        cut = _piece_end(text, start)
        piece = bytes(text[start:cut])
        start = cut
        # Every slot between two of the brackets and commas holds one number:
        # orjson refuses an empty slot or two numbers in one inside a piece
        # (it reads the piece's numbers with its brackets as spaces), and a
        # piece ends just after a comma, so no slot spans two; the ones at a
        # piece's edges (stripped before orjson reads it) are counted: the
        # numbers read must be as many as the slots the skeleton's shape has.
        structure = piece.translate(None, _NOT_STRUCTURE)
        if structure.translate(None, b"[],"):
            return None  # something other than numbers, brackets and commas
        skeleton.append(structure)
        parsed = _parse_numbers(piece.translate(_UNBRACKET))
        if parsed is None:
            return None
        pieces.append(parsed[0])
        integers &= parsed[1]
        large |= parsed[2]
    shape = _shape(b"".join(skeleton))
    if (
        shape is None
        or (integers and large)
        or sum(len(piece) for piece in pieces) != np.prod(shape)
    ):
        return None
    array = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
    del pieces
    return array.reshape(shape)


def _piece_end(text: memoryview, start: int) -> int:
    """Where the piece from `start` ends: after the first comma past
    _PIECE_BYTES, so that no number is cut in two."""
    if len(text) - start <= _PIECE_BYTES:
        return len(text)
    window = bytes(text[start + _PIECE_BYTES : start + _PIECE_BYTES + 4096])
    comma = window.find(b",")
    if comma >= 0:
        return start + _PIECE_BYTES + comma + 1
    return _piece_end_slow(text, start + _PIECE_BYTES)


def _piece_end_slow(text: memoryview, start: int) -> int:
    codes = np.frombuffer(text[start:], np.uint8)
    commas = np.flatnonzero(codes == ord(","))
    return start + int(commas[0]) + 1 if len(commas) else len(text)


def _parse_numbers(text: bytes) -> tuple[np.ndarray, bool, bool] | None:
    """(float32 values, whether all are integers, whether one is an integer of
    2**53 or more in size) of comma-separated numbers, or None when one is not
    a JSON number or is beyond float32's range."""
    try:
        values = np.array(orjson.loads(b"[" + text.strip(b" \t\n\r,") + b"]"))
    except (orjson.JSONDecodeError, TypeError, ValueError, OverflowError):
        return None
    if values.ndim != 1 or values.dtype.kind not in "if":
        return None  # e.g. integers beyond int64, as objects
    wide = values.astype(np.float64, copy=False)
    if not (np.abs(wide) <= _FLOAT32_MAX).all():  # also false for inf
        return None
    integers = values.dtype.kind == "i"
    return wide.astype(np.float32), integers, integers and bool((np.abs(wide) >= _EXACT).any())


def _shape(skeleton: bytes) -> tuple[int, ...] | None:
    """The array's shape when `skeleton` (its brackets and commas, each slot
    known to hold one number) is a rectangular nesting (b"[[,],[,]]"), else None."""
    depth = len(skeleton) - len(skeleton.lstrip(b"["))
    if depth == 0:
        return None
    # Arrays at each depth, counted by how each one ends: its last slot, then
    # the closing brackets of it and of the arrays it ends with.
    arrays = [
        skeleton.count(b"," + b"]" * (depth - level))
        + skeleton.count(b"[" + b"]" * (depth - level))
        for level in range(depth)
    ]
    numbers = skeleton.count(b",") - skeleton.count(b"],[") + arrays[-1]
    counts = [*arrays[1:], numbers]
    if arrays[0] != 1 or any(
        outer == 0 or inner % outer for outer, inner in zip(arrays, counts, strict=True)
    ):
        return None
    shape = tuple(inner // outer for outer, inner in zip(arrays, counts, strict=True))
    expected = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        expected = b"[" + (expected + b",") * (size - 1) + expected + b"]"
    return shape if expected == skeleton else None
