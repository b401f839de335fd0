"""Uploads parsed in bounded memory: CSV bodies a piece at a time (the same
dataset and the same problems whatever the pieces), NPZ archives judged at
float32 from their headers."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest

from models.datasets import csv_format, csv_pieces, parse_dataset
from models.datasets.parsing import parse_upload
from models.errors import FitserveError, InvalidDataset, MalformedBody

CSV = "text/csv"
NPZ = "application/x-npz"


def outcome(body: bytes) -> tuple[object, ...]:
    """What parsing gives: the arrays, or the error's class, message and details."""
    try:
        dataset = parse_dataset(body, CSV)
    except FitserveError as error:
        return type(error).__name__, error.message, error.details
    return dataset.x.tolist(), dataset.x.dtype, dataset.y.tolist(), dataset.y.dtype


def lines(template: bytes, count: int, *values: object) -> bytes:
    """`count` lines from `template` % (i, *values(i)): callables are given the line's index."""
    return b"".join(
        template % (i, *(value(i) if callable(value) else value for value in values))
        for i in range(count)
    )


BODIES = {
    "numbers": b"a,b,label\n" + lines(b"%d,%d.5,%d\n", 40, lambda i: i, lambda i: i % 3),
    "classes": b"a,label\n" + lines(b"%d, c%d \n", 40, lambda i: i % 2),
    "crlf": b"a,label\r\n" + lines(b"%d,%d\r\n", 40, lambda i: i % 2),
    "quoted, spanning lines": b"a,label\n" + lines(b'%d,"c\n%d"\n', 30, lambda i: i % 2),
    "bad cells here and there": b"a,b,label\n"
    + lines(b"%d,%s,1\n", 40, lambda i: b"x" if i % 7 == 3 else b"1"),
    "short rows and blank lines": b"a,b,label\n"
    + (b"1,2,0\n" * 4 + b"\n" + b"1,2,0\n" * 4 + b"3\n") * 4,
    "not finite": b"a,label\n" + lines(b"%d,1\n", 30) + b"inf,1\n" + lines(b"%d,1\n", 9),
    "what only float() reads": b"a,label\n" + b"1_000,1\n\xd9\xa1,0\n" * 20,
    "numbers, then a class": b"a,label\n" + lines(b"%d,%d\n", 40, lambda i: i) + b"1,x\n",
    "non-finite label": b"a,label\n" + lines(b"%d,0.5\n", 40) + b"1,1e39\n",
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_pieces_of_any_size_give_the_same_outcome(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = outcome(body)
    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 16)  # a few lines a piece
    assert outcome(body) == whole


def test_labels_that_look_like_numbers_until_one_is_not_are_all_read_as_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 16)
    body = b"a,label\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(30)) + b"1,x\n"
    labels = parse_dataset(body, CSV).y
    assert labels.tolist() == [str(i % 3) for i in range(30)] + ["x"]


def test_line_numbers_count_across_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 16)
    body = b"a,label\n" + b"1,0\n" * 50 + b"1,0,9\n" + b'1,"x\ny"\n' * 3 + b"z,1\n"
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert [problem["loc"] for problem in info.value.details] == [["line", 52], ["line", 59, "a"]]


def test_text_labels_past_the_array_limit_are_refused() -> None:
    body = b"a,label\n" + b"1,%s\n" % (b"x" * 1000) * 100  # 100 labels of 4,000 bytes each
    with pytest.raises(InvalidDataset, match="at most 100,000 bytes of arrays"):
        parse_upload(body, CSV, None, max_array_bytes=100_000)
    assert parse_upload(body, CSV, None, max_array_bytes=1_000_000)[0].y.dtype == "<U1000"


def test_a_header_wider_than_the_column_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "MAX_COLUMNS", 100)
    body = ",".join(f"c{i}" for i in range(101)).encode() + b"\n" + b"1," * 100 + b"1\n"
    with pytest.raises(InvalidDataset, match="has 101 columns") as info:
        parse_dataset(body, CSV)
    assert info.value.details[0]["loc"] == ["line", 1]


def test_a_bad_byte_is_named_by_its_offset_in_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 16)
    body = b"a,label\n" + b"1,0\n" * 20 + b"1,\xff\n"
    with pytest.raises(MalformedBody, match=f"byte 0xff at offset {len(body) - 2}"):
        parse_dataset(body, CSV)


def test_a_large_csv_takes_memory_near_what_it_stores() -> None:
    """A million rows of two short columns (4 MB): the arrays (4 bytes a
    feature, 8 a label, and the float64 labels read) and one piece's work,
    where parsing it whole took ~75x the body."""
    rows = 1_000_000
    body = b"a,label\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(10)) * (rows // 10)
    tracemalloc.start()
    try:
        dataset = parse_dataset(body, CSV)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dataset.x.shape == (rows, 1) and dataset.y.dtype == np.int64
    stored = rows * 2 * 4
    assert peak < 4 * stored + 32 * 2**20, f"{peak:,} bytes at the peak for {stored:,} stored"


# --- NPZ ---------------------------------------------------------------------------------


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
    return buffer.getvalue()


def test_narrow_npz_dtypes_are_judged_at_float32() -> None:
    """10,000 bytes of int8 features (and 100 of labels) unpack to 40,400 at float32."""
    body = npz(x=np.zeros((1000, 10), np.int8), y=np.zeros(100, np.int8))
    with pytest.raises(InvalidDataset, match="would unpack to 40,400 bytes at float32"):
        parse_upload(body, NPZ, None, max_array_bytes=20_000)


def test_an_npz_in_a_bytearray_is_read() -> None:
    body = bytearray(npz(x=np.arange(6, dtype=np.int8).reshape(3, 2), y=np.array([0, 1, 0])))
    dataset = parse_upload(body, NPZ, None)[0]
    assert dataset.x.dtype == np.float32 and dataset.x.tolist() == [[0, 1], [2, 3], [4, 5]]
