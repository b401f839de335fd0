"""The Open Inference Protocol's binary tensor data extension, as Triton and
KServe implement it (Triton's docs/protocol/extension_binary_data.md).

A request body is a JSON header of `Inference-Header-Content-Length` bytes,
then the raw bytes of each input whose `parameters` hold `binary_data_size`,
in the order of `inputs`: little-endian, row-major; BOOL one byte per
element; BYTES a 4-byte length before each element. A header length of 0 is
Triton's raw binary request: the body is the one input's bytes, and every
output comes back binary. An output is binary when its `binary_data` says
so, or the request's `binary_data_output` does and its own flag is not false.
Every size is checked against the bytes received before anything is read,
and numeric tensors are views of the body (np.frombuffer), not copies.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import InvalidSample, MalformedBody, problem, quoted

HEADER = "Inference-Header-Content-Length"
HEADER_LOC: list[str | int] = ["header", HEADER]
# Each fixed-size datatype's element, little-endian whatever the machine.
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
        "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
        "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    }.items()
}  # fmt: skip
DATATYPES = (*DTYPES, "BYTES")
_DIGITS = re.compile(r"[0-9]{1,20}")
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class InferBody:
    """A request body split where its header length says: `json` is the JSON
    (None for a raw binary request), `binary` the bytes after it."""

    body: bytes | bytearray
    has_header: bool
    json: memoryview | None
    binary: memoryview


def split_body(body: bytes | bytearray, header_length: str | None) -> InferBody:
    """The body's JSON and binary part, as `Inference-Header-Content-Length` says."""
    view = memoryview(body)
    if header_length is None:
        return InferBody(body, False, view, view[len(view) :])
    value = header_length.strip()
    if not _DIGITS.fullmatch(value) or int(value) > len(view):
        raise MalformedBody(
            f"{HEADER} must be the length in bytes of the JSON header at the start of the "
            f"body: an integer from 0 to the body's {len(view):,} bytes. "
            f"Received: {quoted(header_length)}",
            details=[problem(HEADER_LOC, "not a length within the body")],
        )
    length = int(value)
    if length == 0:
        return InferBody(body, True, None, view)
    return InferBody(body, True, view[:length], view[length:])


def attach_binary_inputs(payload: Any, binary: memoryview, has_header: bool) -> None:
    """Put each binary input's tensor (a numpy array, or a list of bytes for
    BYTES) in its `data`, read from `binary` in the order of `inputs`."""
    tensors = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(tensors, list):
        if len(binary):
            raise MalformedBody(
                f'Binary tensor data follows the JSON header, but the header has no "inputs" '
                f"list to say whose it is. Received: {len(binary):,} bytes after the header",
                details=[problem(["inputs"], "missing: the binary data belongs to no input")],
            )
        return  # the route says what is wrong with the inputs
    offset = 0
    for index, tensor in enumerate(tensors):
        size = _binary_size(tensor, index)
        if size is None:
            continue
        loc: list[str | int] = ["inputs", index, "parameters", "binary_data_size"]
        if offset + size > len(binary):
            left = len(binary) - offset
            where = (
                f"the body holds {left:,} bytes after the JSON header and the inputs before it"
                if has_header
                else f"the request has no {HEADER} header, so no binary part"
            )
            raise InvalidSample(
                f"inputs[{index}].parameters.binary_data_size runs past the end of the body: "
                f"{where}. Received: {size:,} bytes",
                details=[problem(loc, "more bytes than the body holds")],
            )
        if "data" in tensor:
            raise InvalidSample(
                f"inputs[{index}] has both data and parameters.binary_data_size: a tensor "
                "travels either as JSON data or as binary data. Received: both",
                details=[problem(["inputs", index, "data"], "not allowed with binary_data_size")],
            )
        tensor["data"] = decode_tensor(
            binary[offset : offset + size], tensor.get("datatype"), tensor.get("shape"),
            ["inputs", index],
        )  # fmt: skip
        offset += size
    if offset != len(binary):
        raise InvalidSample(
            f"{len(binary) - offset:,} bytes after the JSON header belong to no input: "
            f"{HEADER} and the inputs' binary_data_size must add up to the body's length. "
            f"Received: a {len(binary):,}-byte binary part, {offset:,} bytes claimed",
            details=[problem(HEADER_LOC, "the binary part is longer than the inputs claim")],
        )


def raw_request(binary: memoryview, input_name: str, sample_shape: list[int]) -> dict[str, Any]:
    """The request a body without a JSON header stands for (header length 0):
    the model's one FP32 input, its rows as many as the bytes hold, and every
    output answered in binary."""
    row_bytes = math.prod(sample_shape) * DTYPES["FP32"].itemsize
    if not len(binary) or len(binary) % row_bytes:
        raise InvalidSample(
            f"A body without a JSON header ({HEADER}: 0) is the input tensor alone: FP32 rows "
            f"of shape {sample_shape}, {row_bytes:,} bytes each. "
            f"Received: {len(binary):,} bytes",
            details=[problem(["body"], "not a whole number of rows")],
        )
    tensor = {"name": input_name, "datatype": "FP32",
              "shape": [len(binary) // row_bytes, *sample_shape],
              "data": np.frombuffer(binary, dtype=DTYPES["FP32"])}  # fmt: skip
    return {"inputs": [tensor], "parameters": {"binary_data_output": True}}


def _binary_size(tensor: Any, index: int) -> int | None:
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    # `type(...) is int`: JSON's true is a Python bool, which is an int too.
    if type(size) is not int or size < 0:
        raise InvalidSample(
            f"inputs[{index}].parameters.binary_data_size must be the tensor's length in "
            f"bytes, an integer of 0 or more. Received: {quoted(size)}",
            details=[problem(["inputs", index, "parameters", "binary_data_size"],
                             "not a byte count")],
        )  # fmt: skip
    return size


def decode_tensor(
    raw: memoryview, datatype: Any, shape: Any, loc: list[str | int],
    source: list[str | int] | None = None,
) -> Any:  # fmt: skip
    """The elements in `raw`, flat: a read-only numpy view for fixed-size
    datatypes, a list of bytes for BYTES. The count must fit `shape`.
    `source` is where the bytes came from (gRPC's `raw_input_contents[0]`),
    by default the tensor's `parameters.binary_data_size`."""
    if datatype not in DATATYPES:
        raise InvalidSample(
            f"{place_name(loc)}.datatype must be one of {list(DATATYPES)} for binary data. "
            f"Received: {quoted(datatype)}",
            details=[problem([*loc, "datatype"], "not a tensor datatype")],
        )
    count = element_count(shape, loc)
    source = source or [*loc, "parameters", "binary_data_size"]
    if datatype == "BYTES":
        return _decode_bytes(raw, count, loc, source)
    dtype = DTYPES[datatype]
    if count * dtype.itemsize != len(raw):
        raise InvalidSample(
            f"{place_name(loc)}'s binary data must be {count:,} elements of {dtype.itemsize} "
            f"bytes ({datatype}, shape {quoted(shape)}): {count * dtype.itemsize:,} bytes. "
            f"Received: {len(raw):,} bytes ({place_name(source)})",
            details=[problem(source, "does not match the shape and datatype")],
        )
    return np.frombuffer(raw, dtype=dtype)


def element_count(shape: Any, loc: list[str | int]) -> int:
    if not (isinstance(shape, list)
            and all(type(size) is int and size >= 0 for size in shape)):  # fmt: skip
        raise InvalidSample(
            f"{place_name(loc)}.shape must be a list of integers of 0 or more. "
            f"Received: {quoted(shape)}",
            details=[problem([*loc, "shape"], "not a shape")],
        )
    return math.prod(shape)  # Python integers: no overflow to wrap a huge shape round


def _decode_bytes(
    raw: memoryview, count: int, loc: list[str | int], source: list[str | int]
) -> list[bytes]:
    # Each element takes 4 bytes at least: a count the bytes cannot hold is
    # refused before a list of that many is started.
    if count * _LENGTH.size > len(raw):
        raise _bytes_mismatch(loc, source, count, f"{len(raw):,} bytes, too few for that many")
    elements: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset + _LENGTH.size > len(raw):
            break
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise _bytes_mismatch(loc, source, count, f"element {len(elements)} runs past the end")
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(elements) != count or offset != len(raw):
        raise _bytes_mismatch(
            loc,
            source,
            count,
            f"{len(elements)} elements and {len(raw) - offset:,} bytes left over",
        )
    return elements


def _bytes_mismatch(
    loc: list[str | int], source: list[str | int], count: int, received: str
) -> InvalidSample:
    return InvalidSample(
        f"{place_name(loc)}'s binary data must be {count:,} BYTES elements, each a 4-byte "
        f"little-endian length and then that many bytes. Received: {received}",
        details=[problem(source, "does not hold the shape's elements")],
    )


def place_name(loc: list[str | int]) -> str:
    """`["inputs", 0, "shape"]` as a message names it: `inputs[0].shape`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def binary_outputs(payload: dict[str, Any], names: Sequence[str]) -> set[str]:
    """Which of the outputs `names` (those answered) go back as binary data."""
    parameters = payload.get("parameters")
    default = False
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise InvalidSample(
                f"parameters must be a JSON object. Received: {quoted(parameters)}",
                details=[problem(["parameters"], "not an object")],
            )
        default = _flag(parameters, "binary_data_output", ["parameters"], default)
    chosen = {name: default for name in names}
    requested = payload.get("outputs")
    for index, item in enumerate(requested if isinstance(requested, list) else []):
        own = item.get("parameters") if isinstance(item, dict) else None
        if own is None:
            continue
        if not isinstance(own, dict):
            raise InvalidSample(
                f"outputs[{index}].parameters must be a JSON object. Received: {quoted(own)}",
                details=[problem(["outputs", index, "parameters"], "not an object")],
            )
        if item.get("name") in chosen:
            name = item["name"]
            chosen[name] = _flag(own, "binary_data", ["outputs", index, "parameters"], default)
    return {name for name, binary in chosen.items() if binary}


def _flag(parameters: dict[str, Any], key: str, loc: list[str | int], default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidSample(
            f"{'.'.join(map(str, [*loc, key]))} must be true or false. Received: {quoted(value)}",
            details=[problem([*loc, key], "not a boolean")],
        )
    return value


def encode_tensor(datatype: str, data: Any) -> bytes:
    """A tensor's elements (flat, row-major) as the extension sends them."""
    if datatype == "BYTES":
        parts = []
        for raw in element_bytes(data):
            parts += [_LENGTH.pack(len(raw)), raw]
        return b"".join(parts)
    return np.ascontiguousarray(data, dtype=DTYPES[datatype]).tobytes()


def element_bytes(data: Any) -> list[bytes]:
    """A BYTES tensor's elements as bytes: strings (class names) UTF-8 encoded."""
    return [element if isinstance(element, bytes) else str(element).encode() for element in data]


def encode_outputs(body: dict[str, Any], binary: set[str]) -> list[bytes]:
    """`body`'s outputs named in `binary` turned into binary data: their
    entries get `parameters.binary_data_size` in place of `data`, and their
    bytes are returned in the order of `outputs`, to follow the JSON header."""
    parts = []
    for tensor in body["outputs"]:
        if tensor["name"] not in binary:
            continue
        raw = encode_tensor(tensor["datatype"], tensor.pop("data"))
        tensor["parameters"] = {**tensor.get("parameters", {}), "binary_data_size": len(raw)}
        parts.append(raw)
    return parts
