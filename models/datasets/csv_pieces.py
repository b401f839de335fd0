"""A large CSV body read a piece at a time, and the fast reading of a clean piece.

A body parsed at once costs a Python object per cell, many times the bytes
it stores. So a body is cut into pieces of whole lines (about PIECE_BYTES
each), decoded one at a time, and the numbers of a clean piece (no quotes,
every line as wide as the header) are read by numpy's loadtxt, in C,
straight into arrays. A piece it cannot read goes to the csv module, row by
row, which finds each problem and its line (bench/RESULTS.md: memory per
request).

Shared by dataset uploads (models.datasets.csv_format) and prediction bodies
(models.serving.samples).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

PIECE_BYTES = 2 << 20
Body = bytes | bytearray


@dataclass(frozen=True)
class Piece:
    start: int  # the piece is body[start:end]: whole lines, the last one ended or the body's
    end: int
    first_line: int  # the file line (counting from 1) the piece starts on


def pieces(body: Body, start: int, end: int, first_line: int) -> Iterator[Piece]:
    """body[start:end] in pieces of whole lines (split after a newline)."""
    line = first_line
    while start < end:
        cut = body.find(b"\n", min(start + PIECE_BYTES, end) - 1, end)
        stop = end if cut < 0 else cut + 1
        yield Piece(start, stop, line)
        line += body.count(b"\n", start, stop)
        start = stop


def decode(body: Body, piece: Piece) -> str:
    """The piece as text; UnicodeDecodeError positions count from the piece's start.
    (A newline byte is never inside a UTF-8 sequence, so pieces cut none.)"""
    return str(memoryview(body)[piece.start : piece.end], "utf-8")


def fields_per_line(body: Body, piece: Piece) -> np.ndarray:
    """How many comma-separated fields each newline-ended line of the piece has
    (quotes ignored: pieces of a body with quotes are not read this way)."""
    raw = np.frombuffer(body, np.uint8, count=piece.end - piece.start, offset=piece.start)
    ends = np.flatnonzero(raw == ord("\n"))
    if len(ends) == 0 or ends[-1] != len(raw) - 1:
        ends = np.append(ends, len(raw))
    commas = np.flatnonzero(raw == ord(","))
    return np.diff(np.searchsorted(commas, ends), prepend=0) + 1


def numbers(text: str, columns: Sequence[int] | None = None) -> np.ndarray | None:
    """The piece's cells (those of `columns`, or all) as rows of float64, or None
    when one is not a number as numpy reads it (a subset of what float() takes:
    the csv module then reads the piece, and float() judges). Blank lines are
    skipped: callers that refuse them have checked the field counts first."""
    try:
        return np.loadtxt(
            io.StringIO(text), delimiter=",", comments=None, usecols=columns, ndmin=2,
            dtype=np.float64,
        )  # fmt: skip
    except ValueError:
        return None


def words(text: str, column: int) -> np.ndarray | None:
    """One column of the piece as stripped text, or None when numpy cannot read it."""
    try:
        cells = np.loadtxt(
            io.StringIO(text), delimiter=",", comments=None, usecols=[column], ndmin=1,
            dtype=str,
        )  # fmt: skip
    except ValueError:
        return None
    stripped = np.strings.strip(cells)
    longest = int(np.strings.str_len(stripped).max()) if len(stripped) else 1
    return stripped.astype(f"<U{max(longest, 1)}")  # as narrow as the labels
