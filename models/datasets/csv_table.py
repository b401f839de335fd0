"""The cells of a CSV body's rows: numbers into arrays allocated once, labels
as numbers (or as text once one is not a number), and the problems found.

Problems come in the order the old whole-body parser reported them: those of
the rows first (field counts, non-numbers, missing labels, in file order),
then features that are not finite in float32, then numeric labels that are
not. At most MAX_PROBLEMS of each are kept; reading stops at MAX_PROBLEMS of
the first kind.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.datasets.csv_pieces import Body, Piece, fields_per_line, numbers, words
from models.datasets.dataset import Dataset, all_whole, non_finite
from models.datasets.problems import MAX_PROBLEMS, Problem, fail, raise_first, report
from models.errors import InvalidDataset, Loc

Row = tuple[int, list[str]]  # the file line where the row ends, and its fields
_BATCH_CELLS = 1 << 16  # cells the csv module reads before they go into the arrays


@dataclass(frozen=True)
class Header:
    names: list[str]
    label_at: int
    features: list[int]  # the other columns' indices

    @property
    def label(self) -> str:
        return self.names[self.label_at]

    def cell(self, line: int, column: int) -> tuple[Loc, str]:
        """Where a cell is: its loc, and the words a message names it by."""
        return ["line", line, self.names[column]], f"Line {line}, column {self.names[column]!r}"


class Table:
    def __init__(self, header: Header, capacity: int, max_array_bytes: int) -> None:
        self.header = header
        # Allocated once, for the most rows the body can hold; pages are touched
        # (and take memory) only as rows are written to them.
        self.x = np.empty((capacity, len(header.features)), np.float32)
        self.y = np.empty(capacity, np.float64)
        self.rows = 0
        self.max_array_bytes = max_array_bytes
        self.problems: list[Problem] = []
        self.value_problems: list[Problem] = []
        self.label_problems: list[Problem] = []
        self.texts: list[np.ndarray] | None = None  # text labels of rows text_from onwards
        self.text_from = 0
        self.text_bytes = 0

    def full(self) -> bool:
        return len(self.problems) >= MAX_PROBLEMS

    # --- reading ---------------------------------------------------------------------

    def read_piece(self, body: Body, piece: Piece, text: str) -> bool:
        """Read a piece of a plain body with loadtxt; False, reading nothing, when
        a line is not as wide as the header or a cell is not what loadtxt reads."""
        header = self.header
        if not np.all(fields_per_line(body, piece) == len(header.names)):
            return False
        cells = numbers(text) if self.texts is None else None
        if cells is not None:  # every cell a number: one pass
            self._add(cells[:, header.features], cells[:, header.label_at], piece.first_line)
            return True
        features = numbers(text, header.features)
        labels = words(text, header.label_at)
        if features is None or labels is None or not np.all(labels != ""):
            return False
        self._add(features, labels, piece.first_line)
        return True

    def read_rows(self, rows: Iterable[Row]) -> None:
        """Rows the csv module read, checked one by one (each problem named by
        its line and column), put into the arrays a batch at a time."""
        lines: list[int] = []
        values: list[list[float]] = []
        labels: list[str] = []
        for line, row in rows:
            if self.full():
                break
            if len(row) != len(self.header.names):
                self.problems.append(self._width_problem(line, row))
                continue
            numbers, bad = self._numbers(line, row)
            label, missing = self._label(line, row)
            self.problems += bad + missing
            if self.problems:
                continue
            lines.append(line)
            values.append(numbers)
            labels.append(label)
            if len(lines) * len(row) >= _BATCH_CELLS:
                self._add_rows(lines, values, labels)
                lines, values, labels = [], [], []
        self._add_rows(lines, values, labels)

    def _add_rows(self, lines: list[int], values: list[list[float]], labels: list[str]) -> None:
        if lines and not self.problems:
            features = np.array(values, np.float64).reshape(len(lines), -1)
            self._add(features, np.array(labels, dtype=str), np.array(lines))

    def _add(self, features: np.ndarray, labels: np.ndarray, lines: int | np.ndarray) -> None:
        """Rows whose cells all read: features as float64, labels as numbers or
        text; `lines` their file lines (or the first, when one per line)."""
        if self.problems:
            return  # the dataset is refused: only the problems matter now
        start, stop = self.rows, self.rows + len(features)
        self.rows = stop
        header = self.header

        def line(row: int) -> int:
            return lines + row if isinstance(lines, int) else int(lines[row])

        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            self.x[start:stop] = features
        for row, column in non_finite(self.x[start:stop]):
            where = header.cell(line(row), header.features[column])
            _not_finite(self.value_problems, where, features[row, column])
        if self.texts is None and labels.dtype.kind == "U":
            try:
                labels = labels.astype(np.float64)  # float()'s reading of each
            except ValueError:
                self.texts, self.text_from = [], start  # classes: text from here on
        if self.texts is not None:
            self._add_texts(labels if labels.dtype.kind == "U" else labels.astype(str))
            return
        self.y[start:stop] = labels
        with np.errstate(over="ignore"):
            as_float32 = labels.astype(np.float32)
        for (row,) in non_finite(as_float32):
            where = header.cell(line(row), header.label_at)
            _not_finite(self.label_problems, where, labels[row])

    def _add_texts(self, labels: np.ndarray) -> None:
        assert self.texts is not None
        self.texts.append(labels)
        self.text_bytes += labels.nbytes
        self._check_size(self.text_bytes)

    def _check_size(self, label_bytes: int) -> None:
        total = self.rows * self.x.shape[1] * 4 + label_bytes
        if total > self.max_array_bytes:
            fail(
                InvalidDataset,
                [],
                f"The CSV's arrays would take at least {total:,} bytes",
                f"at most {self.max_array_bytes:,} bytes of arrays (features at float32, "
                "text labels at 4 bytes per character of the longest)",
                f"labels of up to {max(text.dtype.itemsize for text in self.texts or []) // 4:,} "
                f"characters, {self.rows:,} rows read so far",
            )

    # --- the cells of one row (the csv module's) ---------------------------------------

    def _width_problem(self, line: int, row: list[str]) -> Problem:
        names = self.header.names
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

    def _numbers(self, line: int, row: list[str]) -> tuple[list[float], list[Problem]]:
        """The row's features as numbers, or a problem for each that is not one."""
        features = self.header.features
        try:
            return [float(row[i]) for i in features], []
        except ValueError:
            # At most MAX_PROBLEMS per row: a row of a million words is not a million problems.
            bad = itertools.islice((i for i in features if not _is_float(row[i])), MAX_PROBLEMS)
            return [], [report(*self.header.cell(line, i), "a number", repr(row[i])) for i in bad]

    def _label(self, line: int, row: list[str]) -> tuple[str, list[Problem]]:
        label_at = self.header.label_at
        label = row[label_at].strip()
        if label:
            return label, []
        return label, [report(*self.header.cell(line, label_at), "a label", repr(row[label_at]))]

    # --- the dataset -------------------------------------------------------------------

    def dataset(self, label_texts: Callable[[], Iterable[np.ndarray]]) -> Dataset:
        """The features and labels read, or the first problems found.
        `label_texts()` reads the label column again, as text, from the first row."""
        raise_first(self.problems)
        rows = self.rows
        if not rows:  # every line was blank: dropped as trailing, or a problem
            fail(InvalidDataset, [], "The CSV body has no data rows", "a data row", "none")
        self.x.resize((rows, self.x.shape[1]), refcheck=False)  # gives back what was not used
        raise_first(self.value_problems)
        if self.texts is None:
            raise_first(self.label_problems)
            labels = self.y[:rows]
            y = labels.astype(np.int64) if all_whole(labels) else labels.astype(np.float32)
        else:
            y = self._text_labels(label_texts)
        return Dataset(self.x, y)

    def _text_labels(self, label_texts: Callable[[], Iterable[np.ndarray]]) -> np.ndarray:
        """Every label as text: those before the first that was not a number are read again."""
        assert self.texts is not None
        head: list[np.ndarray] = []
        missing = self.text_from
        for texts in label_texts() if missing else ():
            head.append(texts[:missing])
            missing -= len(head[-1])
            if not missing:
                break
        parts: Sequence[np.ndarray] = [*head, *self.texts]
        longest = max(part.dtype.itemsize for part in parts)
        self._check_size(self.rows * longest)
        return np.concatenate(parts)


def _not_finite(problems: list[Problem], where: tuple[Loc, str], received: object) -> None:
    if len(problems) < MAX_PROBLEMS:
        problems.append(report(*where, "a finite number within float32 range", received))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
