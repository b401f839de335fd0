"""CSV bodies: a header row, then one sample per line, with one column holding the label.

Read in three layers: the header (its names checked, the label column found),
the rows (lines split, each row's field count checked) and the cells (numbers
and labels, each bad one a problem of its own). A problem's loc is inside the
body (`["line", 7, "age"]`); the API places it in the request.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass

import numpy as np

from models.datasets.dataset import Dataset, checked_float32, numeric_labels
from models.datasets.problems import MAX_PROBLEMS, Problem, fail, preview, raise_first, report
from models.errors import InvalidDataset, Loc, MalformedBody

Row = tuple[int, list[str]]  # the file line where the row ends, and its fields


def parse_csv(body: bytes, target: str | None) -> tuple[Dataset, str]:
    rows = _rows(body)
    header = _header(rows[0][1], target)
    x, labels = _cells(rows[1:], header)
    return _dataset(x, labels, rows[1:], header), header.label


# --- the header ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    names: list[str]
    label_at: int
    features: list[int]  # the other columns' indices

    @property
    def label(self) -> str:
        return self.names[self.label_at]

    def cell(self, line: int, column: int) -> tuple[Loc, str]:
        """Where a cell is: its loc, and the words a message names it by."""
        return ["line", line, self.names[column]], f"Line {line}, column {self.names[column]!r}"


def _header(row: list[str], target: str | None) -> _Header:
    names = [name.strip() for name in row]
    _check_names(names)
    label_at = _label_column(names, target)
    return _Header(names, label_at, [i for i in range(len(names)) if i != label_at])


def _check_names(names: list[str]) -> None:
    if len(names) < 2:
        fail(
            InvalidDataset,
            ["line", 1],
            "The CSV header has too few columns",
            "at least one feature column and a label column",
            names,
        )
    seen: set[str] = set()  # a set: `name in header[:i]` is quadratic in a wide header
    for i, name in enumerate(names):
        if not name or name in seen:
            fail(
                InvalidDataset,
                ["line", 1],
                f"The CSV header's column {i + 1} is empty or repeated",
                "unique column names",
                f"{name!r} in {preview(names)}",
            )
        seen.add(name)


def _label_column(names: list[str], target: str | None) -> int:
    if target is None:
        return len(names) - 1
    if target.strip() not in names:
        fail(
            InvalidDataset,
            [],
            f"The target column {target!r} is not in the CSV header",
            f"one of {preview(names)}",
            repr(target),
            argument="target",
        )
    return names.index(target.strip())


# --- the rows ------------------------------------------------------------------------


def _rows(body: bytes) -> list[Row]:
    """The header and the data rows; blank lines at the end dropped."""
    reader = csv.reader(io.StringIO(_decode(body), newline=""))
    try:  # line_num, read after each row, is the file line where that row ends
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        fail(
            MalformedBody,
            ["line", reader.line_num],
            f"Line {reader.line_num} is not valid CSV",
            "RFC 4180 fields",
            exc,
        )
    while rows and not any(field.strip() for field in rows[-1][1]):
        rows.pop()
    if len(rows) < 2:
        fail(
            InvalidDataset,
            [],
            "The CSV body has no data rows",
            "a header row and at least one data row",
            f"{len(rows)} line(s)",
        )
    return rows


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(
            MalformedBody,
            [],
            "The CSV body is not valid UTF-8",
            "UTF-8 text",
            f"byte {body[exc.start]:#04x} at offset {exc.start}",
        )


def _room_for_features(rows: list[Row], header: _Header) -> np.ndarray | None:
    """x, zeros; None when a row has the wrong width (a problem: x is never filled)."""
    # Field counts before allocating: x is rows × columns, and a wide header over
    # many short lines would ask for terabytes. Rows of the header's width are
    # bounded by the body's size.
    if any(len(row) != len(header.names) for _, row in rows):
        return None
    return np.zeros((len(rows), len(header.features)), np.float64)


def _width_problem(line: int, row: list[str], header: _Header) -> Problem:
    names = header.names
    where = (
        f"column {names[len(row)]!r} is missing"
        if len(row) < len(names)
        else f"column {len(names) + 1} has no header"
    )
    return report(
        ["line", line],
        f"Line {line} has {len(row)} fields, {where}",
        f"{len(names)} fields, one per header column",
        row,  # previewed: a row of a million fields is quoted by its first few
    )


# --- the cells -----------------------------------------------------------------------


def _cells(rows: list[Row], header: _Header) -> tuple[np.ndarray, list[str]]:
    """The features (float64) and the labels; the problems found, raised."""
    x = _room_for_features(rows, header)
    labels, problems = _read(rows, header, x)
    raise_first(problems)
    assert x is not None  # else a row had the wrong width: a problem, raised above
    return x, labels


def _read(
    rows: list[Row], header: _Header, x: np.ndarray | None
) -> tuple[list[str], list[Problem]]:
    """Row by row, in file order, until MAX_PROBLEMS problems: the numbers into
    `x` (when given), the labels, and the problems."""
    labels: list[str] = []
    problems: list[Problem] = []
    for r, (line, row) in enumerate(rows):
        if len(problems) >= MAX_PROBLEMS:
            break
        if len(row) != len(header.names):
            problems.append(_width_problem(line, row, header))
            continue
        values, bad = _numbers(line, row, header)
        label, missing = _label(line, row, header)
        if x is not None and not bad:
            x[r] = values
        labels.append(label)
        problems += bad + missing
    return labels, problems


def _numbers(line: int, row: list[str], header: _Header) -> tuple[list[float], list[Problem]]:
    """The row's features as numbers, or a problem for each that is not one."""
    try:
        return [float(row[i]) for i in header.features], []
    except ValueError:
        # At most MAX_PROBLEMS per row: a row of a million words is not a million problems.
        bad = itertools.islice((i for i in header.features if not _is_float(row[i])), MAX_PROBLEMS)
        return [], [report(*header.cell(line, i), "a number", repr(row[i])) for i in bad]


def _label(line: int, row: list[str], header: _Header) -> tuple[str, list[Problem]]:
    label = row[header.label_at].strip()
    if label:
        return label, []
    return label, [
        report(*header.cell(line, header.label_at), "a label", repr(row[header.label_at]))
    ]


def _dataset(x: np.ndarray, labels: list[str], rows: list[Row], header: _Header) -> Dataset:
    """float32 features and numeric (or string) labels; a bad value named by its cell."""
    lines = [line for line, _ in rows]
    x32 = checked_float32(x, lambda i: header.cell(lines[i[0]], header.features[i[1]]))
    if all(_is_float(label) for label in labels):
        numbers = np.array([float(label) for label in labels])
        y = numeric_labels(numbers, lambda i: header.cell(lines[i[0]], header.label_at))
    else:
        y = np.array(labels, dtype=str)
    return Dataset(x32, y)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
