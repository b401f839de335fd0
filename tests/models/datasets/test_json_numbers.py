"""The JSON numbers fast path: the same arrays as the parsers it stands in
for, and every other body left to them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest

from models.datasets import json_numbers
from models.datasets.json_format import parse_json as parse_dataset
from models.errors import InvalidSample, MalformedBody
from models.serving import samples


@pytest.fixture(autouse=True)
def _fast_path_from_64_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service takes the fast path from 16 MiB; these bodies are smaller.
    monkeypatch.setattr(json_numbers, "MIN_BYTES", 1 << 16)


def number_text(rng: np.random.Generator, count: int) -> list[str]:
    """Numbers as a client might write them: ints, negatives, exponents,
    -0.0, many digits, large and small magnitudes."""
    kinds = rng.integers(0, 9, size=count)
    floats = rng.normal(size=count) * 10.0 ** rng.integers(-45, 31, size=count)
    ints = rng.integers(-(2**40), 2**40, size=count)
    out = []
    for kind, value, whole in zip(kinds.tolist(), floats.tolist(), ints.tolist(), strict=True):
        out.append(
            [
                repr(value),
                str(whole),
                f"{value:.3e}",
                f"{value:.17E}".replace("E+", "E"),
                "-0.0",
                "0",
                f"{abs(value):.25f}",
                repr(float(np.float32(value))),
                f"{whole}e-3",
            ][kind]
        )
    return out


def rows_text(numbers: list[str], columns: int, spaced: bool) -> bytes:
    gap = ", " if spaced else ","
    rows = ["[" + gap.join(numbers[i : i + columns]) + "]" for i in range(0, len(numbers), columns)]
    return ("[" + (",\n " if spaced else ",").join(rows) + "]").encode()


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_path_reads_what_orjson_and_json_read(seed: int) -> None:
    rng = np.random.default_rng(seed)
    columns = int(rng.integers(1, 40))
    rows = int(rng.integers(1, 3000))
    text = rows_text(number_text(rng, rows * columns), columns, spaced=bool(seed % 2))
    body = b'{"instances": ' + text + b', "signature_name": "serving_default"}'

    fast = json_numbers.loads(body, orjson.loads, min_bytes=0)
    assert fast is not None and fast.take(fast.payload, "instances")
    assert fast.payload["signature_name"] == "serving_default"
    array = fast.payload["instances"]
    assert array.dtype == np.float32 and array.shape == (rows, columns)

    expected = np.asarray(orjson.loads(text)).astype(np.float32)
    from_json = np.asarray(json.loads(text)).astype(np.float32)
    assert array.tobytes() == expected.tobytes()  # bit for bit, -0.0 included
    assert array.tobytes() == from_json.tobytes()


def test_pieces_join_across_many_rows_and_deeper_samples() -> None:
    x = np.random.default_rng(7).normal(size=(30_000, 4, 3)).astype(np.float32)
    text = orjson.dumps(x.tolist())
    assert len(text) > 4 * json_numbers._PIECE_BYTES
    array = json_numbers.numeric_array(memoryview(text))
    assert array is not None and array.shape == x.shape
    assert array.tobytes() == np.asarray(orjson.loads(text)).astype(np.float32).tobytes()


@pytest.mark.parametrize(
    "text",
    [
        b"[[1,2],[3]]",
        b"[[1,2],[3,4,5]]",
        b"[[1 2],[3,4]]",
        b"[[1],2[3]]",
        b"[[1]2]",
        b"[1,[2]]",
        b"[[],[1]]",
        b"[]",
        b"[1,,2]",
        b"[+1]",
        b"[.5]",
        b"[1.]",
        b"[01]",
        b"[1e]",
        b"[1-2]",
        b"[1.5.5]",
        b"[1e999]",
        b"[1e39]",  # beyond float32: the parser's path reports it
        b"[9007199254740993]",  # 2**53 + 1: int64 and float64 round it differently
        b'[1,"2"]',
        b"[1,null]",
        b"[1,true]",
        b"[1,NaN]",
        b'[1,{"a":2}]',
    ],
)
def test_anything_else_is_left_to_the_parser(text: bytes) -> None:
    assert json_numbers.numeric_array(memoryview(text)) is None


def test_minus_zero_reads_as_the_parsers_read_it() -> None:
    # JSON parsers read -0 as the integer 0, and -0.0 as the float -0.0.
    array = json_numbers.numeric_array(memoryview(b"[-0,-0.0,-0e1]"))
    assert array is not None
    assert array.tobytes() == np.asarray(orjson.loads(b"[-0,-0.0,-0e1]"), np.float32).tobytes()


def test_an_array_inside_a_string_is_left_to_the_parser() -> None:
    body = b'{"instances": "' + b"[1,2]," * 20_000 + b'[1,2]"}'
    assert json_numbers.loads(body, orjson.loads) is None


def body_of(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def rows(count: int, columns: int) -> list[list[float]]:
    return np.random.default_rng(count).normal(size=(count, columns)).tolist()


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_predict_bodies_take_the_fast_path(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values = rows(5000, 8)
    body = body_of({key: values})
    calls = []

    def parse(raw: bytes | bytearray) -> Any:
        calls.append(len(raw))
        return orjson.loads(raw)

    x, layout = samples.from_json_body(body, [8], None, parse)
    assert layout == ("row" if key == "instances" else "columnar")
    assert x.tobytes() == np.asarray(values, np.float32).tobytes()
    assert calls and max(calls) < 1000  # only the rest of the body went to the parser


def test_named_columnar_inputs_take_the_fast_path() -> None:
    values = rows(5000, 8)
    x, layout = samples.from_json_body(body_of({"inputs": {"x": values}}), [8], None, orjson.loads)
    assert layout == "columnar" and x.shape == (5000, 8)


def errors(body: bytes, shape: list[int], max_rows: int | None = None) -> tuple[str, str]:
    """The error from the fast path's entry point and from the parsed payload."""
    found = []
    for call in (
        lambda: samples.from_json_body(body, shape, max_rows, orjson.loads),
        lambda: samples.from_json(orjson.loads(body), shape, max_rows),
    ):
        with pytest.raises((InvalidSample, MalformedBody)) as caught:
            call()
        found.append(f"{type(caught.value).__name__}: {caught.value.message}")
    return found[0], found[1]


@pytest.mark.parametrize(
    "case",
    ["wrong shape", "ragged", "string", "too many rows", "both keys"],
)
def test_predict_errors_are_unchanged(case: str) -> None:
    values: list[Any] = rows(5000, 8)
    shape, max_rows, payload = [8], None, None
    if case == "wrong shape":
        shape = [7]
    elif case == "ragged":
        values[4000] = values[4000][:7]
    elif case == "string":
        values[4000][3] = "1.5"
    elif case == "too many rows":
        max_rows = 4999
    else:
        payload = {"instances": values, "inputs": values}
    fast, parsed = errors(body_of(payload or {"instances": values}), shape, max_rows)
    assert fast == parsed


def test_json_datasets_take_the_fast_path_with_the_same_arrays() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(4000, 6))
    y = rng.integers(0, 3, size=4000)
    body = json.dumps({"x": x.tolist(), "y": y.tolist()}).encode()
    assert json_numbers.loads(body, json.loads) is not None
    parsed_x, parsed_y = parse_dataset(body)
    assert parsed_x.tobytes() == x.astype(np.float32).tobytes()
    assert parsed_y.tolist() == y.tolist()


def test_json_dataset_errors_are_unchanged() -> None:
    x: list[Any] = np.random.default_rng(12).normal(size=(4000, 6)).tolist()
    x[3000][2] = 1e39  # beyond float32: reported as before, by value
    body = json.dumps({"x": x, "y": [0] * 4000}).encode()
    parsed_x, _ = parse_dataset(body)  # the slow path's array, checked later
    assert parsed_x.dtype == np.float64 and parsed_x[3000, 2] == 1e39


def test_v2_infer_data_takes_the_fast_path() -> None:
    from models.serving.binary_tensors import split_body
    from service.routes.v2 import _parse_infer

    values = rows(5000, 8)
    tensor = {"name": "x", "shape": [5000, 8], "datatype": "FP32", "data": values}
    payload = _parse_infer(split_body(body_of({"inputs": [tensor], "id": "a"}), None))
    data = payload["inputs"][0]["data"]
    assert isinstance(data, np.ndarray) and payload["id"] == "a"
    assert data.tobytes() == np.asarray(values, np.float32).tobytes()

    values[10][2] = "1.5"  # not numbers only: parsed as before
    payload = _parse_infer(split_body(body_of({"inputs": [{**tensor, "data": values}]}), None))
    assert payload["inputs"][0]["data"] == values
