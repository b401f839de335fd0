"""CSV prediction bodies: one sample per line (blank lines skipped), after an
optional header, read a piece of the body at a time.

As for dataset uploads (models.datasets.csv_pieces): pieces of whole lines,
the clean ones read by numpy's loadtxt straight into one float32 array, whose
rows are bounded by the body (a sample of n numbers takes n bytes at least) and
by the row limit; a piece it cannot read is read line by line, which names
the first sample that is not `features` comma-separated numbers.
"""

from __future__ import annotations

import re

import numpy as np

from models.datasets.csv_pieces import Body, Piece, fields_per_line, numbers, pieces
from models.errors import InvalidSample, MalformedBody, problem

_VISIBLE = re.compile(rb"\S")


class OverLimit(Exception):
    """More samples than `max_rows`; `rows` counts them all. (Not an error the
    API shows: models.serving.samples turns it into TooManyRows.)"""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


def read_csv(body: Body, input_shape: list[int], max_rows: int | None) -> np.ndarray:
    """The samples as float32 rows of the flattened input. Raises for a line
    that is not a sample, a sample that is not finite, and (OverLimit) for
    more than `max_rows` samples."""
    features = int(np.prod(input_shape))
    capacity = len(body) // features + 1
    x = np.empty((capacity if max_rows is None else min(capacity, max_rows), features), np.float32)
    rows, first_bad = 0, -1
    for piece in pieces(body, _data_start(body), len(body), 1):
        text = _decoded(body, piece)
        block = _clean(body, piece, text, features)
        if block is None:
            block = _line_by_line(text, features, input_shape, rows)
        if rows + len(block) > len(x):
            raise OverLimit(rows + _samples_from(body, piece))
        with np.errstate(over="ignore"):  # beyond float32: inf, refused as not finite
            x[rows : rows + len(block)] = block
        bad = np.flatnonzero(~np.isfinite(x[rows : rows + len(block)]).all(axis=1))
        if first_bad < 0 and len(bad):
            first_bad = rows + int(bad[0])
        rows += len(block)
    if not rows:
        raise MalformedBody("The CSV body holds no samples.")
    if first_bad >= 0:
        raise InvalidSample(f"Sample {first_bad} holds NaN or infinity; expected finite numbers.")
    x.resize((rows, features), refcheck=False)  # gives back what was not used
    return x


def _data_start(body: Body) -> int:
    """Where the samples start: after the first line that is not blank, when
    that line is a header (not all numbers)."""
    visible = _VISIBLE.search(body)
    if visible is None:
        return 0
    begin = max(body.rfind(b"\n", 0, visible.start()), body.rfind(b"\r", 0, visible.start())) + 1
    cut = body.find(b"\n", visible.start())
    end = len(body) if cut < 0 else cut + 1
    line = _decoded(body, Piece(begin, end, 1)).strip()
    return begin if _is_numeric_row(line) else end


def _decoded(body: Body, piece: Piece) -> str:
    try:
        return str(memoryview(body)[piece.start : piece.end], "utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("The CSV body is not UTF-8 text.") from None


def _clean(body: Body, piece: Piece, text: str, features: int) -> np.ndarray | None:
    if not np.all(fields_per_line(body, piece) == features):
        return None
    return numbers(text)


def _line_by_line(text: str, features: int, input_shape: list[int], first: int) -> np.ndarray:
    rows: list[list[float]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != features or not _is_numeric_row(line):
            index = first + len(rows)
            raise InvalidSample(
                f"Sample {index} must be {features} comma-separated numbers (the model's "
                f"input shape {input_shape}). Received: {_short(line)}",
                details=[problem([index], "wrong sample")],
            )
        rows.append([float(field) for field in fields])
    return np.array(rows, np.float64).reshape(-1, features)


def _samples_from(body: Body, piece: Piece) -> int:
    """How many samples (lines not blank) the body holds from `piece` on."""
    return sum(
        sum(1 for line in _decoded(body, rest).splitlines() if line.strip())
        for rest in pieces(body, piece.start, len(body), piece.first_line)
    )


def _is_numeric_row(line: str) -> bool:
    try:
        [float(field) for field in line.split(",")]
    except ValueError:
        return False
    return True


def _short(value: str, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
