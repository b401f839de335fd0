"""CSV bodies: a header row, then one sample per line, with one column holding the label.

Read in three layers: the header (its names checked, the label column found),
the rows (each row's field count checked) and the cells (numbers and labels,
each bad one a problem of its own). A problem's loc is inside the body
(`["line", 7, "age"]`); the API places it in the request.

Memory stays near the size of what is stored: rows are read a piece of the
body at a time (models.datasets.csv_pieces) into arrays allocated once the
header has fixed the row width, bounded by the body (a row as wide as the
header takes at least that many bytes); a wide header over short rows is
refused row by row without either.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from models.datasets.csv_pieces import Body, pieces
from models.datasets.csv_table import Header, Table
from models.datasets.dataset import Dataset
from models.datasets.npz_format import MAX_ARRAY_BYTES
from models.datasets.problems import fail, preview
from models.errors import InvalidDataset, MalformedBody

_BOM = b"\xef\xbb\xbf"
# Columns a header may name: each name is a Python string while the header is
# read, and a 256 MiB header of one-letter names would be 128 million of them.
MAX_COLUMNS = 1_000_000
# What the trailing lines that are dropped hold (old readers and spreadsheets leave them).
_BLANK_BYTES = np.frombuffer(b" \t\n\r\x0b\x0c,", np.uint8)
_TRAIL_BLOCK = 1 << 20
_LABEL_BATCH = 4096  # labels read again as text at a time


def parse_csv(
    body: Body, target: str | None, max_array_bytes: int = MAX_ARRAY_BYTES
) -> tuple[Dataset, str]:
    """`max_array_bytes` bounds the labels of a CSV (text labels take 4 bytes per
    character of the longest); its numbers are bounded by its size."""
    start = len(_BOM) if body.startswith(_BOM) else 0
    end = _end_of_rows(body, start)
    cut = body.find(b"\n", start, end)
    commas = body.count(b",", start, end if cut < 0 else cut)  # before a name is read
    if commas >= MAX_COLUMNS:
        _too_wide(commas + 1)
    if _plain(body, start, end):
        return _parse_plain(body, start, end, target, max_array_bytes)
    return _parse_records(body, start, end, target, max_array_bytes)


def _end_of_rows(body: Body, start: int) -> int:
    """Where the rows end: lines at the end that hold only blanks and commas are
    dropped. Found from the end, a block at a time (a regular expression
    anchored at the end would try every position of a long blank run)."""
    stop = len(body)
    while stop > start:
        block = max(start, stop - _TRAIL_BLOCK)
        raw = np.frombuffer(body, np.uint8, count=stop - block, offset=block)
        kept = np.flatnonzero(~np.isin(raw, _BLANK_BYTES))
        if len(kept):
            last = block + int(kept[-1]) + 1  # just past the last byte that is not blank
            cut = body.find(b"\n", last)
            return len(body) if cut < 0 else cut
        stop = block
    return start


def _plain(body: Body, start: int, end: int) -> bool:
    """True when every line is a row: no quotes, and no carriage return but in `\\r\\n`."""
    return body.find(b'"', start, end) < 0 and body.count(b"\r", start, end) == body.count(
        b"\r\n", start, end
    )


def _no_data_rows(lines: int) -> None:
    fail(
        InvalidDataset,
        [],
        "The CSV body has no data rows",
        "a header row and at least one data row",
        f"{lines} line(s)",
    )


def _parse_plain(
    body: Body, start: int, end: int, target: str | None, max_array_bytes: int
) -> tuple[Dataset, str]:
    """A body whose rows are its lines: the header is the first; pieces of whole
    lines follow, each read by loadtxt or, when it cannot, by the csv module."""
    cut = body.find(b"\n", start, end)
    data_start = end if cut < 0 else cut + 1
    if data_start >= end:
        _no_data_rows(0 if start >= end else 1)
    header_text = _decoded(body, start, data_start).rstrip("\r\n")
    header = _header(header_text.split(","), target)
    table = Table(header, _capacity(body, data_start, end, len(header.names)), max_array_bytes)
    for piece in pieces(body, data_start, end, 2):
        text = _decoded(body, piece.start, piece.end)
        if not table.read_piece(body, piece, text):
            reader = csv.reader(io.StringIO(text, newline=""))
            table.read_rows(_numbered(reader, piece.first_line - 1))
        if table.full():
            break
    return table.dataset(lambda: _label_texts(body, data_start, end, 2, header)), header.label


def _parse_records(
    body: Body, start: int, end: int, target: str | None, max_array_bytes: int
) -> tuple[Dataset, str]:
    """A body with quotes (a record may span lines): one csv reader over it all."""
    reader = csv.reader(_lines(body, start, end))
    records = _numbered(reader, 0)
    first = next(records, None)
    if first is None:
        _no_data_rows(0)
    peeked = next(records, None)
    if peeked is None:
        _no_data_rows(1)
    assert first is not None and peeked is not None
    header = _header(first[1], target)
    table = Table(header, _capacity(body, start, end, len(header.names)), max_array_bytes)
    table.read_rows(itertools.chain([peeked], records))

    def texts() -> Iterator[tuple[int, list[str]]]:
        return itertools.islice(_numbered(csv.reader(_lines(body, start, end)), 0), 1, None)

    return table.dataset(lambda: _label_texts_of(texts(), header)), header.label


def _numbered(reader: Iterator[list[str]], line_offset: int) -> Iterator[tuple[int, list[str]]]:
    """(the file line where the row ends, the row), or MalformedBody at a csv error."""
    try:
        for row in reader:
            yield line_offset + reader.line_num, row  # type: ignore[attr-defined]
    except csv.Error as exc:
        line = line_offset + reader.line_num  # type: ignore[attr-defined]
        fail(MalformedBody, ["line", line], f"Line {line} is not valid CSV", "RFC 4180 fields", exc)


def _lines(body: Body, start: int, end: int) -> Iterator[str]:
    """The body's lines with their endings, decoded a piece at a time (what
    csv.reader reads: it carries a quoted field from one line to the next)."""
    for piece in pieces(body, start, end, 1):
        yield from io.StringIO(_decoded(body, piece.start, piece.end), newline="")


def _decoded(body: Body, start: int, end: int) -> str:
    try:
        return str(memoryview(body)[start:end], "utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        fail(
            MalformedBody,
            [],
            "The CSV body is not valid UTF-8",
            "UTF-8 text",
            f"byte {body[offset]:#04x} at offset {offset}",
        )


def _capacity(body: Body, start: int, end: int, width: int) -> int:
    """The most rows body[start:end] can hold: no more than its lines (ended by
    \\n, \\r or both), and a row of `width` fields takes at least `width` bytes
    (its commas and its line's end)."""
    lines = body.count(b"\n", start, end) + body.count(b"\r", start, end) + 1
    return min(lines, (end - start) // width + 1)


def _label_texts(
    body: Body, start: int, end: int, first_line: int, header: Header
) -> Iterable[np.ndarray]:
    """The label column as text, a piece at a time (read again when labels that
    looked like numbers turn out to be classes)."""
    for piece in pieces(body, start, end, first_line):
        text = _decoded(body, piece.start, piece.end)
        reader = csv.reader(io.StringIO(text, newline=""))
        yield from _label_texts_of(_numbered(reader, piece.first_line - 1), header)


def _label_texts_of(rows: Iterator[tuple[int, list[str]]], header: Header) -> Iterable[np.ndarray]:
    while batch := list(itertools.islice(rows, _LABEL_BATCH)):
        yield np.array([row[header.label_at].strip() for _, row in batch], dtype=str)


def _too_wide(columns: int) -> None:
    fail(
        InvalidDataset,
        ["line", 1],
        f"The CSV header has {columns:,} columns",
        f"at most {MAX_COLUMNS:,} columns",
        f"{columns:,} comma-separated names",
    )


# --- the header ----------------------------------------------------------------------


def _header(row: list[str], target: str | None) -> Header:
    if len(row) > MAX_COLUMNS:
        _too_wide(len(row))
    names = [name.strip() for name in row]
    _check_names(names)
    label_at = _label_column(names, target)
    return Header(names, label_at, [i for i in range(len(names)) if i != label_at])


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
