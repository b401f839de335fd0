"""Prediction inputs: TF Serving JSON (row and columnar), CSV and NPY bodies."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from models.errors import InvalidSample, MalformedBody
from models.serving.samples import from_csv, from_json, from_npy
from service.errors import http_status

VECTOR = [3]
IMAGE = [2, 2]


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def bad_sample(call, index: int, loc: list[str | int], *words: str) -> InvalidSample:
    """Assert `call()` is a 400 naming sample `index` at `loc`."""
    with pytest.raises(InvalidSample) as caught:
        call()
    error = caught.value
    assert http_status(error) == 400
    assert error.code == "invalid_sample"
    assert f"Sample {index}" in error.message, error.message
    assert error.details[0]["loc"] == loc
    for word in words:
        assert word in error.message, error.message
    return error


# --- JSON ---------------------------------------------------------------------------------


def test_row_format():
    x, form = from_json({"instances": [[1, 2, 3], [4.5, 5, 6]]}, VECTOR)
    assert form == "row"
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[1, 2, 3], [4.5, 5, 6]])


def test_row_format_of_images():
    x, _ = from_json({"instances": [[[1, 2], [3, 4]]]}, IMAGE)
    assert x.shape == (1, 2, 2)


@pytest.mark.parametrize(
    "inputs", [[[1, 2, 3], [4, 5, 6]], {"x": [[1, 2, 3], [4, 5, 6]]}], ids=["list", "named"]
)
def test_columnar_format(inputs):
    x, form = from_json({"inputs": inputs}, VECTOR)
    assert form == "columnar"
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])


def test_columnar_format_with_two_names_is_refused():
    with pytest.raises(MalformedBody, match="one input"):
        from_json({"inputs": {"a": [[1, 2, 3]], "b": [[1, 2, 3]]}}, VECTOR)


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"instances": [[1, 2, 3], [4, 5, 6], [7, 8]]}, ["instances", 2]),
        ({"inputs": [[1, 2, 3], [4, 5, 6], [7, 8, 9, 10]]}, ["inputs", 2]),
        ({"inputs": {"x": [[1, 2, 3], [4, 5, 6], [7]]}}, ["inputs", "x", 2]),
    ],
)
def test_wrong_shape_sample_names_its_index(payload, loc):
    error = bad_sample(lambda: from_json(payload, VECTOR), 2, loc, "expected shape [3]")
    assert "shape [" in error.details[0]["msg"]


def test_consistent_but_wrong_shape_names_the_first_sample():
    bad_sample(
        lambda: from_json({"instances": [[1, 2], [3, 4]]}, VECTOR),
        0,
        ["instances", 0],
        "shape [2]",
    )


@pytest.mark.parametrize(
    ("sample", "word"),
    [
        ([1, [2, 3], 4], "ragged"),
        (["a", "b", "c"], "non-numeric"),
        ({"x": 1}, "non-numeric"),
    ],
)
def test_ragged_or_non_numeric_sample_is_named(sample, word):
    payload = {"instances": [[1, 2, 3], sample]}
    bad_sample(lambda: from_json(payload, VECTOR), 1, ["instances", 1], word)


def test_null_value_is_refused():
    # numpy reads JSON null as NaN, so it is refused as not finite.
    payload = {"instances": [[1, 2, 3], [1, None, 3]]}
    bad_sample(lambda: from_json(payload, VECTOR), 1, ["instances", 1])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused(value):
    payload = {"instances": [[1, 2, 3], [4, 5, 6], [7, value, 9]]}
    bad_sample(lambda: from_json(payload, VECTOR), 2, ["instances", 2], "NaN or infinity")


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]},
        {"signature_name": "serving_default"},
        {},
        [[1, 2, 3]],
        "instances",
    ],
    ids=["both", "neither", "empty", "bare list", "string"],
)
def test_exactly_one_of_instances_or_inputs(payload):
    with pytest.raises(MalformedBody) as caught:
        from_json(payload, VECTOR)
    assert http_status(caught.value) == 400
    assert '"instances"' in caught.value.message
    assert '"inputs"' in caught.value.message


@pytest.mark.parametrize("samples", [[], {}, "1,2,3", 7, None])
def test_samples_must_be_a_non_empty_list(samples: Any):
    with pytest.raises(MalformedBody, match="non-empty list"):
        from_json({"instances": samples}, VECTOR)


# --- CSV ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"1,2,3\n4,5,6\n", b"a,b,c\n1,2,3\n4,5,6\n", b"1,2,3\r\n\r\n4,5,6"],
    ids=["no header", "header", "crlf and blank line"],
)
def test_csv(body):
    x = from_csv(body, VECTOR)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])


def test_csv_is_reshaped_to_the_input_shape():
    x = from_csv(b"1,2,3,4\n5,6,7,8\n", IMAGE)
    assert x.shape == (2, 2, 2)
    np.testing.assert_array_equal(x[1], [[5, 6], [7, 8]])


@pytest.mark.parametrize(
    ("body", "index"),
    [
        (b"1,2,3\n4,5,6\n7,8\n", 2),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", 1),
        (b"1,2,3\n4,x,6\n", 1),
    ],
    ids=["short row", "long row after header", "non-numeric"],
)
def test_csv_wrong_row_names_the_sample(body, index):
    bad_sample(lambda: from_csv(body, VECTOR), index, [index], "3 comma-separated")


def test_csv_with_nan_is_refused():
    with pytest.raises(InvalidSample, match="Sample 1 holds NaN"):
        from_csv(b"1,2,3\n4,nan,6\n", VECTOR)


@pytest.mark.parametrize("body", [b"", b"a,b,c\n", b"\n\n"])
def test_csv_without_samples_is_refused(body):
    with pytest.raises(MalformedBody, match="no samples"):
        from_csv(body, VECTOR)


def test_csv_must_be_utf8():
    with pytest.raises(MalformedBody, match="UTF-8"):
        from_csv(b"\xff\xfe1,2,3", VECTOR)


# --- NPY ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8])
def test_npy_round_trip(dtype):
    array = np.arange(12).reshape(3, 2, 2).astype(dtype)
    x = from_npy(npy(array), IMAGE)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, array.astype(np.float32))


@pytest.mark.parametrize(
    "array",
    [np.zeros((3, 4)), np.zeros((3, 2, 3)), np.zeros(4), np.array([["a", "b"], ["c", "d"]])],
    ids=["flat", "wrong dim", "rank 1", "strings"],
)
def test_npy_wrong_shape_or_dtype_is_refused(array):
    with pytest.raises(InvalidSample) as caught:
        from_npy(npy(array), IMAGE)
    assert "[rows, 2, 2]" in caught.value.message
    assert str(list(array.shape)) in caught.value.message


def test_npy_with_infinity_is_refused():
    array = np.zeros((3, 3))
    array[1, 2] = np.inf
    with pytest.raises(InvalidSample, match="Sample 1 holds NaN or infinity"):
        from_npy(npy(array), VECTOR)


@pytest.mark.parametrize(
    "body",
    [b"not an npy file", npy(np.zeros((2, 3)))[:40], b""],
    ids=["garbage", "truncated", "empty"],
)
def test_unreadable_npy_is_malformed(body):
    with pytest.raises(MalformedBody, match="npy"):
        from_npy(body, VECTOR)


def test_npy_object_arrays_are_not_unpickled():
    body = io.BytesIO()
    np.save(body, np.array([[1, 2, 3]], dtype=object), allow_pickle=True)
    with pytest.raises(MalformedBody):
        from_npy(body.getvalue(), VECTOR)


def test_an_npy_header_that_declares_more_than_the_body_holds_is_refused():
    """A 100-byte body declaring terabytes: refused from its header, before numpy allocates."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)}
    )
    with pytest.raises(MalformedBody, match="only 64 bytes of data follow"):
        from_npy(header.getvalue() + bytes(64), VECTOR)


def test_an_npz_archive_is_not_an_npy_array():
    archive = io.BytesIO()
    np.savez(archive, x=np.zeros((2, 3)))
    with pytest.raises(MalformedBody, match="npy"):
        from_npy(archive.getvalue(), VECTOR)
