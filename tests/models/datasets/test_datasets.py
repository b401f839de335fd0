"""Dataset parsing, target description and the content-addressed store."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits, load_iris

from models.datasets import (
    Dataset,
    DatasetStore,
    describe_target,
    media_type_for_filename,
    parse_dataset,
)
from models.errors import (
    InvalidDataset,
    MalformedBody,
    NotFound,
    UnsupportedMediaType,
)
from models.storage.blobs import FolderBlobs

CSV = "text/csv"
JSON = "application/json"
NPZ = "application/x-npz"


def csv_body(header: list[str], rows: list[list[Any]]) -> bytes:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def json_body(x: Any, y: Any) -> bytes:
    return json.dumps({"x": x, "y": y}).encode()


def npz_body(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
    return buffer.getvalue()


@pytest.fixture(scope="module")
def iris_csv() -> bytes:
    iris = load_iris()
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    rows = [
        [*features, iris.target_names[label]]
        for features, label in zip(iris.data, iris.target, strict=True)
    ]
    return csv_body(header, rows)


SIMPLE_CSV = csv_body(["a", "b", "label"], [[1, 2, 0], [3, 4, 1], [5, 6, 1]])


# --- CSV ---------------------------------------------------------------------------------


def test_csv_with_numeric_labels() -> None:
    dataset = parse_dataset(SIMPLE_CSV, CSV)
    assert dataset.x.dtype == np.float32
    np.testing.assert_array_equal(dataset.x, [[1, 2], [3, 4], [5, 6]])
    assert dataset.y.dtype == np.int64
    np.testing.assert_array_equal(dataset.y, [0, 1, 1])


def test_csv_with_fractional_labels_gives_float32() -> None:
    dataset = parse_dataset(csv_body(["a", "price"], [[1, 2.5], [2, 3.0]]), CSV)
    assert dataset.y.dtype == np.float32
    np.testing.assert_allclose(dataset.y, [2.5, 3.0])


def test_csv_iris_with_string_labels(iris_csv: bytes) -> None:
    dataset = parse_dataset(iris_csv, CSV)
    assert dataset.x.shape == (150, 4)
    assert dataset.y.dtype.kind == "U"
    target = describe_target(dataset.y)
    assert target["kind"] == "categorical"
    assert target["classes"] == ["setosa", "versicolor", "virginica"]
    assert target["counts"] == {"setosa": 50, "versicolor": 50, "virginica": 50}


def test_csv_string_labels_are_stripped() -> None:
    dataset = parse_dataset(b"a,label\n1, yes \n2,no\n", CSV)
    assert dataset.y.tolist() == ["yes", "no"]


def test_csv_target_selects_a_middle_column() -> None:
    body = csv_body(["a", "b", "c"], [[1, 10, 100], [2, 20, 200], [3, 30, 300]])
    dataset = parse_dataset(body, CSV, target="b")
    np.testing.assert_array_equal(dataset.x, [[1, 100], [2, 200], [3, 300]])
    np.testing.assert_array_equal(dataset.y, [10, 20, 30])


def test_csv_media_type_parameters_and_case_are_ignored() -> None:
    dataset = parse_dataset(SIMPLE_CSV, "Text/CSV; charset=utf-8")
    assert dataset.x.shape == (3, 2)


def test_csv_trailing_blank_lines_and_bom_are_ignored() -> None:
    dataset = parse_dataset(b"\xef\xbb\xbf" + SIMPLE_CSV + b"\n\n  \n", CSV)
    assert dataset.x.shape == (3, 2)


def test_csv_not_utf8_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="UTF-8") as info:
        parse_dataset(b"a,label\n\xff\xfe,1\n", CSV)
    assert "Received:" in info.value.message


@pytest.mark.parametrize("body", [b"", b"  \n\n", b"a,b,label\n", b"a,b,label\n\n\n"])
def test_csv_empty_or_header_only_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidDataset, match="Received:"):
        parse_dataset(body, CSV)


def test_csv_unknown_target_lists_available_columns() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(SIMPLE_CSV, CSV, target="price")
    message = info.value.message
    assert "'price'" in message
    assert all(f"'{column}'" in message for column in ("a", "b", "label"))
    assert info.value.details[0]["loc"] == []
    assert info.value.argument == "target"  # the API places it: ["query", "target"]


def test_csv_short_row_names_line_and_missing_column() -> None:
    body = b"a,b,label\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n9,10,1\n11,12\n"
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert info.value.message.startswith("Line 7 ")
    assert "'label'" in info.value.message
    assert info.value.details[0]["loc"] == ["line", 7]


def test_csv_long_row_names_line_and_extra_column() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(b"a,b,label\n1,2,0\n3,4,1,9\n", CSV)
    assert "Line 3" in info.value.message
    assert "column 4" in info.value.message
    assert info.value.details[0]["loc"] == ["line", 3]


def test_csv_non_numeric_feature_names_line_column_and_value() -> None:
    body = b"id,age,label\n1,20,0\n2,30,1\n3,40,1\n4,abc,0\n"
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert info.value.message == "Line 5, column 'age': expected a number. Received: 'abc'"
    assert info.value.details[0]["loc"] == ["line", 5, "age"]


def test_csv_line_numbers_count_quoted_newlines() -> None:
    body = b'a,b,label\n1,2,"multi\nline"\n3,x,y\n'
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert info.value.details[0]["loc"] == ["line", 4, "b"]


def test_csv_reports_at_most_twenty_problems() -> None:
    body = csv_body(["a", "label"], [["bad", 1]] * 30)
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert len(info.value.details) == 20
    assert info.value.details[0]["loc"] == ["line", 2, "a"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_csv_non_finite_feature_names_line_and_column(value: str) -> None:
    body = csv_body(["a", "b", "label"], [[1, 2, 0], [3, value, 1]])
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert info.value.message.startswith("Line 3, column 'b': expected a finite number")
    assert info.value.details[0]["loc"] == ["line", 3, "b"]


def test_csv_non_finite_numeric_label_names_line_and_column() -> None:
    body = csv_body(["a", "target"], [[1, 0.5], [2, 1.5], [3, "NaN"]])
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, CSV)
    assert info.value.details[0]["loc"] == ["line", 4, "target"]


def test_csv_missing_label_names_line_and_column() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(b"a,label\n1,0\n2,\n", CSV)
    assert info.value.details[0]["loc"] == ["line", 3, "label"]


@pytest.mark.parametrize("header", [b"label\n", b"a,,label\n", b"a,a,label\n"])
def test_csv_bad_header_is_invalid(header: bytes) -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(header + b"1,2,3\n", CSV)
    assert info.value.details[0]["loc"] == ["line", 1]


def test_csv_wide_header_with_a_late_repeat_names_the_column_briefly() -> None:
    """50,000 distinct names, then a repeat: found in one pass (a check that
    compares each name with all before it takes minutes on such a header), and
    the message quotes a few names, not all of them."""
    names = [f"c{i}" for i in range(50_000)] + ["c7"]
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(csv_body(names, [[0] * len(names)]), CSV)
    message = info.value.message
    assert "column 50001 is empty or repeated" in message and "'c7'" in message
    assert "(50,001 items)" in message and len(message) < 500


def test_csv_problems_quote_a_long_row_briefly() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(b"a,label\n" + b"0," * 100_000 + b"1\n", CSV)
    message = info.value.message
    assert message.startswith("Line 2 has 100001 fields") and len(message) < 500


def test_csv_a_wide_header_over_short_rows_is_refused_before_any_allocation() -> None:
    """640 KB: 50,000 columns, then 200,000 empty lines and a row. Allocating
    rows x header width first (as the parser once did) asks for 80 GB; the field
    counts are checked first, and the rows are read a piece at a time."""
    header = ",".join(f"c{i}" for i in range(50_000)).encode()
    body = header + b"\n" + b"\n" * 200_000 + b"1\n"
    tracemalloc.start()
    try:
        with pytest.raises(InvalidDataset) as info:
            parse_dataset(body, CSV)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.message.startswith("Line 2 has 0 fields")
    assert peak < 128 * 2**20, f"{peak:,} bytes at the peak for a {len(body):,}-byte body"


def test_csv_a_row_of_words_is_at_most_twenty_problems() -> None:
    header = [f"c{i}" for i in range(1000)] + ["label"]
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(csv_body(header, [["word"] * 1000 + [1]]), CSV)
    assert len(info.value.details) == 20


# --- JSON --------------------------------------------------------------------------------


def test_json_digits_images_keep_their_rank() -> None:
    digits = load_digits()
    images, labels = digits.images[:200], digits.target[:200]
    dataset = parse_dataset(json_body(images.tolist(), labels.tolist()), JSON)
    assert dataset.x.shape == (200, 8, 8)
    assert dataset.x.dtype == np.float32
    np.testing.assert_array_equal(dataset.x, images)
    np.testing.assert_array_equal(dataset.y, labels)
    assert describe_target(dataset.y)["classes"] == list(range(10))


def test_json_scalar_samples_become_one_column() -> None:
    dataset = parse_dataset(json_body([1, 2, 3], ["a", "b", "a"]), JSON)
    assert dataset.x.shape == (3, 1)
    assert dataset.y.tolist() == ["a", "b", "a"]


def test_json_multi_output_targets_are_2d_float32() -> None:
    dataset = parse_dataset(json_body([[1], [2]], [[1, 2], [3, 4]]), JSON)
    assert dataset.y.shape == (2, 2)
    assert dataset.y.dtype == np.float32
    assert describe_target(dataset.y)["outputs"] == 2


def test_json_target_parameter_is_ignored() -> None:
    dataset = parse_dataset(json_body([[1], [2]], [0, 1]), JSON, target="nope")
    assert dataset.y.tolist() == [0, 1]


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"x": [[1]]}', b'{"x": 1, "y": [1]}', b"\xff\xfe{}"]
)
def test_json_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody, match="Received:"):
        parse_dataset(body, JSON)


def test_json_empty_x_is_invalid() -> None:
    with pytest.raises(InvalidDataset):
        parse_dataset(json_body([], []), JSON)


def test_json_ragged_sample_names_its_index() -> None:
    x = [[1.0, 2.0]] * 12 + [[1.0]] + [[3.0, 4.0]]
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(json_body(x, [0] * 14), JSON)
    assert "Sample 12" in info.value.message
    assert info.value.details[0]["loc"] == ["x", 12]


def test_json_non_numeric_feature_names_its_sample() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(json_body([[1, 2], [3, "four"]], [0, 1]), JSON)
    assert "'four'" in info.value.message
    assert info.value.details[0]["loc"] == ["x", 1]


def test_json_nan_feature_names_row_and_column() -> None:
    body = b'{"x": [[1, 2], [3, NaN]], "y": [0, 1]}'
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(body, JSON)
    assert "Row 1" in info.value.message
    assert info.value.details[0]["loc"] == ["x", 1, 1]


def test_json_infinite_label_names_row() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(b'{"x": [[1], [2]], "y": [0.5, Infinity]}', JSON)
    assert info.value.details[0]["loc"] == ["y", 1]


def test_json_mixed_labels_are_invalid() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(json_body([[1], [2], [3]], [1, 2, "three"]), JSON)
    assert info.value.details[0]["loc"] == ["y", 2]


def test_json_row_count_mismatch_is_invalid() -> None:
    with pytest.raises(InvalidDataset, match="3 labels"):
        parse_dataset(json_body([[1], [2], [3]], [0, 1]), JSON)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"x": [[1], ' + b"[" * 600 + b"1" + b"]" * 600 + b'], "y": [1, 2]}', ["x", 1]),
        (b'{"x": [[1], [2]], "y": [1, ' + b"[" * 600 + b"1" + b"]" * 600 + b"]}", ["y", 1]),
    ],
    ids=["x", "y"],
)
def test_json_lists_nested_hundreds_deep_are_refused_where_they_are(
    body: bytes, loc: list[str | int]
) -> None:
    """json.loads reads 600 levels; the shape checks would exhaust the stack (a 500)."""
    with pytest.raises(InvalidDataset, match="nests lists more than 4 deep") as info:
        parse_dataset(body, JSON)
    assert info.value.details[0]["loc"] == loc


# --- NPZ ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [NPZ, "application/octet-stream"])
def test_npz_round_trip(content_type: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3, 2))
    y = np.array(["cat", "dog"] * 10)
    dataset = parse_dataset(npz_body(x=x, y=y), content_type)
    np.testing.assert_allclose(dataset.x, x.astype(np.float32))
    np.testing.assert_array_equal(dataset.y, y)


def test_npz_rank1_x_is_one_column() -> None:
    dataset = parse_dataset(npz_body(x=np.arange(4), y=np.array([0.1, 0.2, 0.3, 0.4])), NPZ)
    assert dataset.x.shape == (4, 1)
    assert dataset.y.dtype == np.float32


def test_npz_object_array_is_refused() -> None:
    body = npz_body(x=np.zeros((2, 1)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(InvalidDataset, match="object"):
        parse_dataset(body, NPZ)


@pytest.mark.parametrize(
    "body", [b"not an archive", b"PK\x03\x04broken", npz_body(x=np.zeros((2, 1))), npz_body()]
)
def test_npz_corrupt_or_missing_arrays_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody, match="Received:"):
        parse_dataset(body, NPZ)


def npz_members(members: dict[str, bytes]) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return archive.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npz_arrays_are_read_only_from_the_members_numpy_savez_writes() -> None:
    """numpy would also read a member named plain `x`: one whose header the bomb check skipped."""
    body = npz_members({"x": npy_bytes(np.zeros((2, 1))), "y.npy": npy_bytes(np.zeros(2))})
    with pytest.raises(MalformedBody, match="no array 'x' \\(member 'x.npy'\\)"):
        parse_dataset(body, NPZ)


def test_npz_member_that_is_not_an_npy_array_is_malformed() -> None:
    body = npz_members({"x.npy": b"not an array", "y.npy": npy_bytes(np.zeros(2))})
    with pytest.raises(MalformedBody, match="member 'x.npy' is not a .npy array") as info:
        parse_dataset(body, NPZ)
    assert info.value.details[0]["loc"] == ["x"]


def test_npz_single_npy_array_is_malformed() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    with pytest.raises(MalformedBody, match="single .npy"):
        parse_dataset(buffer.getvalue(), NPZ)


def test_npz_string_features_are_invalid() -> None:
    with pytest.raises(InvalidDataset, match="dtype <U"):
        parse_dataset(npz_body(x=np.array([["a"], ["b"]]), y=np.array([0, 1])), NPZ)


def test_npz_nan_label_names_row() -> None:
    with pytest.raises(InvalidDataset) as info:
        parse_dataset(npz_body(x=np.zeros((3, 2)), y=np.array([0.5, np.nan, 1.5])), NPZ)
    assert info.value.details[0]["loc"] == ["y", 1]


def test_npz_row_count_mismatch_is_invalid() -> None:
    with pytest.raises(InvalidDataset, match="one per row"):
        parse_dataset(npz_body(x=np.zeros((3, 2)), y=np.zeros(2)), NPZ)


# --- media types -------------------------------------------------------------------------


def test_unsupported_media_type_names_the_accepted_ones() -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        parse_dataset(SIMPLE_CSV, "text/plain")
    assert "text/csv" in info.value.message
    assert "application/x-npz" in info.value.message
    assert "'text/plain'" in info.value.message


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("iris.csv", CSV),
        ("DATA.JSON", JSON),
        ("arrays.npz", NPZ),
        ("notes.txt", None),
        ("noext", None),
    ],
)
def test_media_type_for_filename(filename: str, expected: str | None) -> None:
    assert media_type_for_filename(filename) == expected


# --- describe_target ---------------------------------------------------------------------


def test_describe_binary_numeric_labels() -> None:
    target = describe_target(np.array([0, 1, 1, 0, 1]))
    assert target == {"kind": "binary", "classes": [0, 1], "counts": {"0": 2, "1": 3}}


def test_describe_binary_string_labels() -> None:
    target = describe_target(np.array(["no", "yes", "yes"]))
    assert target["kind"] == "binary"
    assert target["classes"] == ["no", "yes"]


def test_describe_categorical_whole_number_labels() -> None:
    target = describe_target(np.array([0, 1, 2] * 10, dtype=np.int64))
    assert target["kind"] == "categorical"
    assert target["counts"] == {"0": 10, "1": 10, "2": 10}
    assert all(type(c) is int for c in target["classes"])


def test_describe_single_string_class_is_categorical() -> None:
    assert describe_target(np.array(["a", "a"]))["kind"] == "categorical"


def test_describe_many_distinct_whole_numbers_is_numeric() -> None:
    assert describe_target(np.arange(10))["kind"] == "numeric"  # 10 classes > rows / 2


def test_describe_float_labels_are_numeric() -> None:
    target = describe_target(np.array([0.5, 1.5, 2.0], dtype=np.float32))
    assert target["kind"] == "numeric"
    assert target["classes"] == [] and target["counts"] == {}
    assert target["min"] == 0.5 and target["max"] == 2.0
    assert target["mean"] == pytest.approx(4 / 3)
    assert target["outputs"] == 1


def test_describe_diabetes_targets_are_numeric() -> None:
    diabetes = load_diabetes()
    target = describe_target(diabetes.target)
    assert target["kind"] == "numeric"
    assert target["min"] == pytest.approx(diabetes.target.min())
    json.dumps(target)


def test_describe_2d_targets_are_numeric_with_outputs() -> None:
    target = describe_target(np.ones((4, 3), dtype=np.float32))
    assert target["kind"] == "numeric"
    assert target["outputs"] == 3


def test_describe_results_are_plain_json() -> None:
    for y in (np.array([0, 1]), np.array(["a", "b", "c"]), np.array([0.1, 0.2])):
        target = describe_target(y)
        assert json.loads(json.dumps(target)) == target


# --- DatasetStore ------------------------------------------------------------------------


def test_store_save_returns_a_record(tmp_path: Path, iris_csv: bytes) -> None:
    record, created = DatasetStore(FolderBlobs(tmp_path)).save(iris_csv, CSV)
    assert created is True
    assert len(record["id"]) == 24
    assert record["rows"] == 150
    assert record["x_shape"] == [4]
    assert record["x_dtype"] == "float32"
    assert record["target"]["column"] == "species"
    assert record["target"]["kind"] == "categorical"
    assert record["sha256"] == hashlib.sha256(iris_csv).hexdigest()
    assert record["format"] == "csv"
    assert record["bytes"] == len(iris_csv)
    assert record["created_at"].endswith("Z")
    assert json.loads(json.dumps(record)) == record


def test_store_same_bytes_give_the_same_dataset(tmp_path: Path) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    first, created_first = store.save(SIMPLE_CSV, CSV)
    second, created_second = store.save(SIMPLE_CSV, "text/csv; charset=utf-8")
    assert (created_first, created_second) == (True, False)
    assert second == first
    assert len(store.list()) == 1


def test_store_csv_target_is_part_of_the_id(tmp_path: Path) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    by_default, _ = store.save(SIMPLE_CSV, CSV)
    by_b, created = store.save(SIMPLE_CSV, CSV, target="b")
    assert created is True
    assert by_b["id"] != by_default["id"]
    assert by_b["target"]["column"] == "b"
    assert by_b["sha256"] == by_default["sha256"]
    for record, target in ((by_default, b""), (by_b, b"b")):
        digest = hashlib.sha256(SIMPLE_CSV + b"\0target=" + target).hexdigest()
        assert record["id"] == digest[:24]


def test_store_json_and_npz_ignore_target_in_the_id(tmp_path: Path) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    body = json_body([[1], [2]], [0, 1])
    first, _ = store.save(body, JSON)
    second, created = store.save(body, JSON, target="anything")
    assert created is False
    assert second["id"] == first["id"] == hashlib.sha256(body).hexdigest()[:24]
    assert first["target"]["column"] is None


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"a,b,label\n1,2,0\n3,x,1\n", CSV, InvalidDataset),
        (b"{oops", JSON, MalformedBody),
        (b"a,b\n1,2\n", "text/plain", UnsupportedMediaType),
    ],
)
def test_store_failed_save_stores_nothing(
    tmp_path: Path, body: bytes, content_type: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        DatasetStore(FolderBlobs(tmp_path)).save(body, content_type)
    assert list(tmp_path.iterdir()) == []


def test_store_load_returns_equal_arrays(tmp_path: Path) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.array(["a", "b", "c", "a", "b", "c"])
    record, _ = store.save(npz_body(x=x, y=y), NPZ)
    loaded = store.load(record["id"])
    assert isinstance(loaded, Dataset)
    np.testing.assert_array_equal(loaded.x, x)
    np.testing.assert_array_equal(loaded.y, y)
    assert loaded.y.dtype.kind == "U"
    assert store.get(record["id"]) == record
    assert record["format"] == "npz"


def test_store_list_is_newest_first_and_skips_temp_folders(tmp_path: Path) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    ids = [store.save(json_body([[i], [i + 1]], [0, 1]), JSON)[0]["id"] for i in range(3)]
    (tmp_path / ".tmp-leftover").mkdir()
    assert [record["id"] for record in store.list()] == ids[::-1]


def test_store_list_of_missing_root_is_empty(tmp_path: Path) -> None:
    assert DatasetStore(FolderBlobs(tmp_path / "absent")).list() == []


def test_store_delete(tmp_path: Path) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    record, _ = store.save(SIMPLE_CSV, CSV)
    store.delete(record["id"])
    assert store.list() == []
    assert list(tmp_path.iterdir()) == []
    for action in (store.get, store.load, store.delete):
        with pytest.raises(NotFound):
            action(record["id"])
    _, created = store.save(SIMPLE_CSV, CSV)
    assert created is True


@pytest.mark.parametrize(
    "dataset_id",
    [
        "../../etc/passwd",
        "..",
        "",
        "0" * 23,
        "0" * 25,
        "A" * 24,
        "0" * 24 + "\n",
        "0" * 24,
    ],
)
def test_store_bad_or_unknown_id_is_not_found(tmp_path: Path, dataset_id: str) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    (tmp_path / "datasets").mkdir()
    for action in (store.get, store.load, store.delete):
        with pytest.raises(NotFound, match="Received:"):
            action(dataset_id)


def test_store_losing_the_create_race_returns_the_winner(tmp_path: Path) -> None:
    blobs = FolderBlobs(tmp_path)
    real_create = blobs.create
    winner: dict[str, Any] = {}

    def create_after_a_rival(key: str, data: bytes) -> bool:
        blobs.create = real_create  # type: ignore[method-assign]
        winner.update(DatasetStore(FolderBlobs(tmp_path)).save(SIMPLE_CSV, CSV)[0])
        return real_create(key, data)

    blobs.create = create_after_a_rival  # type: ignore[method-assign]
    record, created = DatasetStore(blobs).save(SIMPLE_CSV, CSV)
    assert created is False
    assert record == winner
    assert [path.name for path in (tmp_path / "datasets").iterdir()] == [record["id"]]


def test_store_refuses_an_npz_that_unpacks_beyond_its_limit(tmp_path: Path) -> None:
    """The API sets the limit from its upload limit: a few kilobytes of deflated
    zeros can declare far more than any upload it accepts."""
    store = DatasetStore(FolderBlobs(tmp_path), max_array_bytes=10_000)
    body = npz_body(x=np.zeros((100, 100)), y=np.zeros(100))
    with pytest.raises(InvalidDataset, match="expected at most 10,000 bytes of arrays"):
        store.save(body, NPZ)
    assert list(tmp_path.iterdir()) == []
    assert DatasetStore(FolderBlobs(tmp_path)).save(body, NPZ)[1] is True


def test_an_npz_bomb_is_refused_before_it_unpacks() -> None:
    """A tiny archive whose header declares 80 GB of float64: refused from the
    header alone, without allocating."""
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 10)}
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("x.npy", np.lib.format.MAGIC_PREFIX + b"\x01\x00"
                        + header.getvalue()[8:] + b"\0" * 64)  # fmt: skip
        y = io.BytesIO()
        np.save(y, np.zeros(10))
        bundle.writestr("y.npy", y.getvalue())
    with pytest.raises(InvalidDataset, match="would unpack to 80,000,000,080 bytes"):
        parse_dataset(archive.getvalue(), "application/x-npz")
