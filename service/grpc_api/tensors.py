"""A ModelInferRequest's tensors as the protocol's JSON shape
(service.open_inference), and a prediction as a ModelInferResponse.

An input's elements come either raw (`raw_input_contents`, one entry per
input, little-endian) or typed (`contents`, in the field of its datatype),
never both. Raw bytes are checked against shape x datatype before anything
is read and read in place (models.serving.binary_tensors); typed elements
are counted against the shape before they are converted. A declared shape
never sizes an allocation: only the elements actually sent do. Outputs go
back as the client sent: raw when its inputs were raw (as Triton answers
tritonclient), typed otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.errors import InvalidSample, problem, quoted
from models.serving import binary_tensors
from models.serving.loaded_model import Prediction
from service import open_inference
from service.grpc_api.protocol import ModelInferResponse

# The typed field of each datatype (FP16 has none: it travels raw).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip
# Each field's own element type: values wider than the datatype are not refused here.
FIELD_DTYPES = {"bool_contents": "?", "int_contents": "<i4", "int64_contents": "<i8",
                "uint_contents": "<u4", "uint64_contents": "<u8", "fp32_contents": "<f4",
                "fp64_contents": "<f8"}  # fmt: skip


def request_payload(request: Any) -> dict[str, Any]:
    """The request as service.open_inference reads one, each input's
    elements decoded (a numpy array, or a list of bytes for BYTES)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidSample(
            f"raw_input_contents must hold one entry per input, in the order of inputs: "
            f"{len(request.inputs)}. Received: {len(raw)} entries",
            details=[problem(["raw_input_contents"], "not one entry per input")],
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        loc: list[str | int] = ["inputs", index]
        typed = [field.name for field, _ in tensor.contents.ListFields()]
        shape = list(tensor.shape)
        if raw and typed:
            raise InvalidSample(
                f"inputs[{index}] has contents.{typed[0]}, and the request raw_input_contents: "
                "every input's elements travel either typed in contents or raw in "
                "raw_input_contents. Received: both",
                details=[problem([*loc, "contents"], "not allowed with raw_input_contents")],
            )
        if raw:
            data = binary_tensors.decode_tensor(
                memoryview(raw[index]), tensor.datatype, shape, loc, ["raw_input_contents", index]
            )
        else:
            data = _typed_elements(tensor, typed, shape, loc)
        inputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": shape, "data": data}
        )
    outputs = [{"name": output.name} for output in request.outputs]
    return {"id": request.id, "inputs": inputs, "outputs": outputs}


def _typed_elements(tensor: Any, typed: list[str], shape: list[int], loc: list[str | int]) -> Any:
    field = CONTENTS_FIELDS.get(tensor.datatype)
    place = binary_tensors.place_name(loc)
    if field is None:
        raise InvalidSample(
            f"{place}.datatype must be one of {list(CONTENTS_FIELDS)} for typed contents "
            f"(FP16 travels in raw_input_contents only). Received: {quoted(tensor.datatype)}",
            details=[problem([*loc, "datatype"], "no typed contents field")],
        )
    others = [name for name in typed if name != field]
    if others:
        raise InvalidSample(
            f"{place} is {tensor.datatype}: its elements go in contents.{field}. "
            f"Received: contents.{others[0]}",
            details=[problem([*loc, "contents", others[0]], f"not the field of {tensor.datatype}")],
        )
    count = binary_tensors.element_count(shape, loc)
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidSample(
            f"{place}.contents.{field} must hold {count:,} elements for shape {quoted(shape)}. "
            f"Received: {len(values):,} elements",
            details=[problem([*loc, "contents", field], "does not match the shape")],
        )
    if field == "bytes_contents":
        return list(values)
    return np.array(values, dtype=FIELD_DTYPES[field])


def response_message(
    payload: dict[str, Any], name: str, prediction: Prediction, wanted: set[str], raw: bool
) -> Any:
    """The ModelInferResponse of `prediction`: the outputs in `wanted`, raw or typed."""
    response = ModelInferResponse(
        model_name=name, model_version=str(prediction.version), id=payload["id"]
    )
    for tensor in open_inference.output_tensors(prediction, wanted):
        datatype, data = tensor["datatype"], tensor["data"]
        output = response.outputs.add(name=tensor["name"], datatype=datatype, shape=tensor["shape"])
        if raw:
            response.raw_output_contents.append(binary_tensors.encode_tensor(datatype, data))
        elif datatype == "BYTES":
            output.contents.bytes_contents.extend(binary_tensors.element_bytes(data))
        else:
            values = np.asarray(data, dtype=binary_tensors.DTYPES[datatype]).tolist()
            getattr(output.contents, CONTENTS_FIELDS[datatype]).extend(values)
    return response
