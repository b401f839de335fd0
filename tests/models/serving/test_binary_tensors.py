"""The binary tensor data codec, held to what Triton's own client library
writes and reads (tritonclient.utils), for every datatype."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor, triton_to_np_dtype

from models.errors import BadRequest
from models.serving import binary_tensors as bt

FIXED = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
         "FP16", "FP32", "FP64"]  # fmt: skip


def sample(datatype: str) -> np.ndarray:
    values = np.arange(-3, 9).reshape(3, 4) * 7
    return values.astype(triton_to_np_dtype(datatype))


@pytest.mark.parametrize("datatype", FIXED)
def test_fixed_size_tensors_read_and_write_as_tritonclient_does(datatype: str) -> None:
    tensor = sample(datatype)
    # What tritonclient's InferInput.set_data_from_numpy(binary_data=True) sends.
    sent = tensor.tobytes()
    decoded = bt.decode_tensor(memoryview(sent), datatype, [3, 4], ["inputs", 0])
    np.testing.assert_array_equal(decoded.reshape(3, 4), tensor)
    assert bt.encode_tensor(datatype, tensor) == sent


def test_bytes_tensors_read_and_write_as_tritonclient_does() -> None:
    tensor = np.array([b"", b"cat", "d\u00f6g".encode(), b"\0\xff"], dtype=np.object_)
    sent = serialize_byte_tensor(tensor).item()
    assert bt.decode_tensor(memoryview(sent), "BYTES", [2, 2], ["inputs", 0]) == list(tensor)
    written = bt.encode_tensor("BYTES", ["", "cat", "d\u00f6g", b"\0\xff"])
    assert list(deserialize_bytes_tensor(written)) == list(tensor)


def test_big_endian_input_would_be_misread_so_the_codec_fixes_the_byte_order() -> None:
    # The extension is little-endian on every machine: the numbers must not depend on ours.
    assert bt.encode_tensor("INT32", np.array([1], dtype=">i4")) == b"\x01\x00\x00\x00"
    assert bt.DTYPES["FP64"].byteorder in ("<", "=") and bt.DTYPES["FP64"].str == "<f8"


def raises(loc: list[Any], call: Any, *args: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        call(*args)
    assert caught.value.details[0]["loc"] == loc
    assert "Received:" in caught.value.message
    return caught.value


def test_sizes_are_checked_before_anything_is_read() -> None:
    size_loc = ["inputs", 0, "parameters", "binary_data_size"]
    raw = memoryview(bytes(16))
    raises(size_loc, bt.decode_tensor, raw, "FP32", [2, 3], ["inputs", 0])
    # A count no body could hold is refused from the sizes alone.
    raises(size_loc, bt.decode_tensor, raw, "BYTES", [2**60], ["inputs", 0])
    raises(size_loc, bt.decode_tensor, raw, "FP64", [2**40, 2**40], ["inputs", 0])
    raises(["inputs", 0, "shape"], bt.decode_tensor, raw, "FP32", [2, -2], ["inputs", 0])
    raises(["inputs", 0, "shape"], bt.decode_tensor, raw, "FP32", [True, 4], ["inputs", 0])
    raises(["inputs", 0, "datatype"], bt.decode_tensor, raw, "fp32", [4], ["inputs", 0])
    # BYTES whose lengths do not add up to the size given, either way.
    short = memoryview(b"\x05\x00\x00\x00ab")
    raises(size_loc, bt.decode_tensor, short, "BYTES", [1], ["inputs", 0])
    extra = memoryview(b"\x01\x00\x00\x00abc")
    raises(size_loc, bt.decode_tensor, extra, "BYTES", [1], ["inputs", 0])


def test_split_body_takes_the_header_length_and_nothing_else() -> None:
    body = bytearray(b'{"inputs": []}\x01\x02')
    split = bt.split_body(body, "14")
    assert bytes(split.json or b"") == b'{"inputs": []}' and bytes(split.binary) == b"\x01\x02"
    assert bt.split_body(body, "0").json is None and bytes(bt.split_body(body, "0").binary) == body
    assert bytes(bt.split_body(body, None).json or b"") == body
    for value in ("17", "-1", "1.0", "0x10", "\u0661\u0662", "9" * 30, ""):
        raises(["header", bt.HEADER], bt.split_body, body, value)


def test_inputs_take_their_bytes_in_order() -> None:
    first, second = np.arange(6, dtype="<f4"), np.array([7, 8], dtype="<i8")
    payload = {"inputs": [
        {"name": "a", "shape": [2, 3], "datatype": "FP32",
         "parameters": {"binary_data_size": 24}},
        {"name": "json", "shape": [1], "datatype": "FP32", "data": [1.5]},
        {"name": "b", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
    ]}  # fmt: skip
    bt.attach_binary_inputs(payload, memoryview(first.tobytes() + second.tobytes()), True)
    np.testing.assert_array_equal(payload["inputs"][0]["data"], first)
    assert payload["inputs"][1]["data"] == [1.5]
    np.testing.assert_array_equal(payload["inputs"][2]["data"], second)


def test_binary_outputs_follow_the_request_flag_unless_an_output_says_otherwise() -> None:
    names = ["output_0", "label"]
    assert bt.binary_outputs({}, names) == set()
    assert bt.binary_outputs({"parameters": {"binary_data_output": True}}, names) == set(names)
    overridden = {"parameters": {"binary_data_output": True},
                  "outputs": [{"name": "label", "parameters": {"binary_data": False}}]}  # fmt: skip
    assert bt.binary_outputs(overridden, names) == {"output_0"}
    one = {"outputs": [{"name": "label", "parameters": {"binary_data": True}}]}
    assert bt.binary_outputs(one, names) == {"label"}
    raises(["parameters"], bt.binary_outputs, {"parameters": [1]}, names)


def test_encoded_outputs_replace_data_by_their_size() -> None:
    body = {"outputs": [
        {"name": "output_0", "datatype": "FP32", "shape": [2, 1],
         "data": np.array([[0.5], [1.5]], dtype=np.float32)},
        {"name": "label", "datatype": "INT64", "shape": [2], "data": [3, 4]},
    ]}  # fmt: skip
    parts = bt.encode_outputs(body, {"label"})
    assert parts == [np.array([3, 4], "<i8").tobytes()]
    assert body["outputs"][1] == {"name": "label", "datatype": "INT64", "shape": [2],
                                  "parameters": {"binary_data_size": 16}}  # fmt: skip
    assert "data" in body["outputs"][0]
