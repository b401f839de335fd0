"""The row limit of a prediction request, and large bodies read without copies."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

from models.datasets import csv_pieces
from models.errors import FitserveError, InvalidSample
from models.serving.samples import TooManyRows, from_csv, from_json, from_npy


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "read",
    [
        lambda: from_npy(npy(np.zeros((5, 2), np.float32)), [2], max_rows=4),
        lambda: from_csv(b"a,b\n" + b"1,2\n\n" * 5, [2], max_rows=4),
        lambda: from_json({"instances": [[1, 2]] * 5}, [2], max_rows=4),
        lambda: from_json({"inputs": {"x": [[1, 2]] * 5}}, [2], max_rows=4),
    ],
    ids=["npy", "csv", "json rows", "json columns"],
)
def test_more_rows_than_the_limit_say_both(read: Callable[[], object]) -> None:
    with pytest.raises(TooManyRows) as info:
        read()
    message = info.value.message
    assert "more than the 4 one request may hold" in message
    assert message.endswith("Received: 5 samples")


def test_rows_at_the_limit_are_read() -> None:
    assert from_npy(npy(np.zeros((4, 2), np.float32)), [2], max_rows=4).shape == (4, 2)
    assert from_csv(b"1,2\n" * 4, [2], max_rows=4).shape == (4, 2)


def test_a_float32_npy_body_is_read_where_it_lies() -> None:
    body = bytearray(npy(np.arange(12, dtype=np.float32).reshape(3, 4)))
    x = from_npy(body, [4])
    assert np.shares_memory(x, np.frombuffer(body, np.uint8))
    assert x.tolist() == np.arange(12).reshape(3, 4).tolist()


def test_a_big_endian_or_fortran_npy_body_is_read() -> None:
    array = np.asfortranarray(np.arange(6, dtype=">f8").reshape(3, 2))
    x = from_npy(npy(array), [2])
    assert x.dtype == np.float32 and x.tolist() == [[0, 1], [2, 3], [4, 5]]


CSV_BODIES = {
    "header and blank lines": b"a,b,c\n\n" + b"1,2,3\n\n4.5,5,6\r\n" * 20,
    "a bad sample late": b"1,2,3\n" * 30 + b"1,x,3\n",
    "a short sample late": b"1,2,3\n" * 30 + b"1,2\n",
    "not finite late": b"1,2,3\n" * 30 + b"1,nan,3\n",
}


def read_csv(body: bytes) -> tuple[object, ...]:
    try:
        x = from_csv(body, [3])
    except FitserveError as error:
        return type(error).__name__, error.message, error.details
    return x.tolist(), x.dtype


@pytest.mark.parametrize("body", CSV_BODIES.values(), ids=CSV_BODIES.keys())
def test_csv_pieces_of_any_size_read_the_same(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = read_csv(body)
    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 8)
    assert read_csv(body) == whole


def test_a_csv_sample_late_in_the_body_is_named_by_its_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 8)
    with pytest.raises(InvalidSample, match="^Sample 30 must be 3 comma-separated numbers"):
        from_csv(b"a,b,c\n" + b"1,2,3\n\n" * 30 + b"1,2\n", [3])
