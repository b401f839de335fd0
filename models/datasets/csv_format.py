"""CSV bodies: a header row, then one sample per line, with one column holding the label."""

from __future__ import annotations

import csv
import io
import itertools

import numpy as np

from models.datasets.dataset import Dataset, checked_float32, numeric_labels
from models.datasets.problems import MAX_PROBLEMS, Problem, fail, preview, problem, raise_first
from models.errors import InvalidDataset, Loc, MalformedBody


def parse_csv(body: bytes, target: str | None) -> tuple[Dataset, str, str]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(
            MalformedBody,
            ["body"],
            "The CSV body is not valid UTF-8",
            "UTF-8 text",
            f"byte {body[exc.start]:#04x} at offset {exc.start}",
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    try:  # line_num, read after each row, is the file line where that row ends
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        fail(
            MalformedBody,
            ["body", "line", reader.line_num],
            f"Line {reader.line_num} is not valid CSV",
            "RFC 4180 fields",
            exc,
        )
    while rows and not any(field.strip() for field in rows[-1][1]):
        rows.pop()
    if len(rows) < 2:
        fail(
            InvalidDataset,
            ["body"],
            "The CSV body has no data rows",
            "a header row and at least one data row",
            f"{len(rows)} line(s)",
        )
    header = [name.strip() for name in rows[0][1]]
    label_at = _label_column(header, target)
    features = [i for i in range(len(header)) if i != label_at]
    lines = [line for line, _ in rows[1:]]
    x = np.zeros((len(lines), len(features)), dtype=np.float64)
    labels: list[str] = []
    problems: list[Problem] = []
    for r, (line, row) in enumerate(rows[1:]):
        if len(problems) >= MAX_PROBLEMS:
            break
        if len(row) != len(header):
            where = (
                f"column {header[len(row)]!r} is missing"
                if len(row) < len(header)
                else f"column {len(header) + 1} has no header"
            )
            problems.append(
                problem(
                    ["body", "line", line],
                    f"Line {line} has {len(row)} fields, {where}",
                    f"{len(header)} fields, one per header column",
                    row,
                )
            )
            continue
        try:
            x[r] = [float(row[i]) for i in features]
        except ValueError:
            # At most MAX_PROBLEMS per row: a row of a million words is not a million problems.
            bad = itertools.islice((i for i in features if not _is_float(row[i])), MAX_PROBLEMS)
            problems += [
                problem(
                    ["body", "line", line, header[i]],
                    f"Line {line}, column {header[i]!r}",
                    "a number",
                    repr(row[i]),
                )
                for i in bad
            ]
        labels.append(row[label_at].strip())
        if not labels[-1]:
            problems.append(
                problem(
                    ["body", "line", line, header[label_at]],
                    f"Line {line}, column {header[label_at]!r}",
                    "a label",
                    repr(row[label_at]),
                )
            )
    raise_first(problems)

    def cell(row: int, column: int) -> tuple[Loc, str]:
        return (
            ["body", "line", lines[row], header[column]],
            f"Line {lines[row]}, column {header[column]!r}",
        )

    x32 = checked_float32(x, lambda i: cell(i[0], features[i[1]]))
    if all(_is_float(label) for label in labels):
        y = numeric_labels(
            np.array([float(label) for label in labels]), lambda i: cell(i[0], label_at)
        )
    else:
        y = np.array(labels, dtype=str)
    return Dataset(x32, y), "csv", header[label_at]


def _label_column(header: list[str], target: str | None) -> int:
    if len(header) < 2:
        fail(
            InvalidDataset,
            ["body", "line", 1],
            "The CSV header has too few columns",
            "at least one feature column and a label column",
            header,
        )
    seen: set[str] = set()  # a set: `name in header[:i]` is quadratic in a wide header
    for i, name in enumerate(header):
        if not name or name in seen:
            fail(
                InvalidDataset,
                ["body", "line", 1],
                f"The CSV header's column {i + 1} is empty or repeated",
                "unique column names",
                f"{name!r} in {preview(header)}",
            )
        seen.add(name)
    if target is None:
        return len(header) - 1
    if target.strip() not in header:
        fail(
            InvalidDataset,
            ["query", "target"],
            f"The target column {target!r} is not in the CSV header",
            f"one of {preview(header)}",
            repr(target),
        )
    return header.index(target.strip())


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
