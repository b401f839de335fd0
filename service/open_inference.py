"""The Open Inference Protocol (KServe V2) whatever carries it: HTTP
(service.routes.v2) and gRPC (service.grpc_api) both call these, so they
answer the same tensors and refuse a request with the same message.

A request is the protocol's JSON shape, as a dict: `{"inputs": [{"name",
"shape", "datatype", "data"}], "outputs": [{"name"}], "id"}`, `data` flat in
row-major order (nested lists are accepted too) or a numpy array; gRPC turns
its message into one (service.grpc_api.tensors). Each model has one input
(`x`, FP32, shape [-1, *input_shape]) and answers with `output_0` (FP32,
[-1, outputs]) and, for classifiers, `label` (the decoded class: BYTES for
string classes, INT64 for numeric ones).
"""

from __future__ import annotations

import math
from importlib.metadata import version as package_version
from typing import Any

import numpy as np

from models.errors import InvalidSample, MalformedBody, problem, quoted
from models.serving.catalog import ModelCatalog
from models.serving.loaded_model import LoadedModel, Prediction
from models.serving.samples import TooManyRows
from service.context import Services

INPUT_NAME = "x"
# The protocol's extensions this server implements, as Triton names them in
# its server metadata.
EXTENSIONS = ["binary_tensor_data"]
NUMERIC_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64",
                 "UINT8", "UINT16", "UINT32", "UINT64"}  # fmt: skip


def server_metadata() -> dict[str, Any]:
    """Server metadata: name, version and the protocol extensions supported."""
    return {"name": "fitserve", "version": package_version("fitserve"), "extensions": EXTENSIONS}


def server_ready(parts: Services) -> bool:
    """The store answers, and the models' start-up warm-up is over (as /readyz)."""
    try:
        parts.models.blobs.check()
        return parts.predictor.warmup.done
    except Exception:  # a folder or a bucket: any failure means not ready
        return False


def model_metadata(catalog: ModelCatalog, name: str, version: int | None) -> dict[str, Any]:
    """The model's metadata: its versions, its one input and its outputs."""
    resolved = catalog.resolve(name, version)
    details = catalog.metadata(name, resolved)
    outputs = [_tensor_metadata("output_0", "FP32", [details["outputs"]])]
    if details["classes"]:
        outputs.append(_tensor_metadata("label", _label_datatype(details["classes"]), []))
    return {
        "name": name,
        "versions": [str(v) for v in catalog.versions(name)],
        "platform": "keras",
        "inputs": [_tensor_metadata(INPUT_NAME, "FP32", details["input_shape"])],
        "outputs": outputs,
    }


def output_names(loaded: LoadedModel) -> list[str]:
    """The outputs `loaded` answers with, in the order they are sent."""
    return ["output_0"] if loaded.encoding.task == "regression" else ["output_0", "label"]


def _tensor_metadata(name: str, datatype: str, sample_shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [-1, *sample_shape]}


def _label_datatype(classes: list[Any]) -> str:
    return "BYTES" if classes and isinstance(classes[0], str) else "INT64"


def input_tensor(payload: Any, loaded: LoadedModel, max_rows: int) -> np.ndarray:
    """The request's one input as float32 rows of the model's input shape,
    or InvalidSample naming the place (TooManyRows past `max_rows`)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise MalformedBody(
            'An infer request is a JSON object with an "inputs" list of tensors. '
            f"Received: {type(payload).__name__}"
        )
    tensors = payload["inputs"]
    if len(tensors) != 1 or not isinstance(tensors[0], dict):
        raise InvalidSample(
            f"The model has one input tensor ('x'). Received: {len(tensors)} inputs",
            details=[problem(["inputs"], "expected exactly one tensor")],
        )
    tensor = tensors[0]
    sample_shape = list(loaded.metadata["input_shape"])
    shape, datatype = tensor.get("shape"), tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in NUMERIC_TYPES:
        raise InvalidSample(
            f"inputs[0].datatype must be a numeric type name, e.g. 'FP32'. "
            f"Received: {quoted(datatype)}",
            details=[problem(["inputs", 0, "datatype"], "not a numeric type")],
        )
    expected = f"[rows, {', '.join(map(str, sample_shape))}]"
    # `type(...) is int`: JSON's true is a Python bool, which is an int too.
    if not (isinstance(shape, list) and len(shape) >= 1 and shape[1:] == sample_shape
            and all(type(size) is int and size > 0 for size in shape)):  # fmt: skip
        raise InvalidSample(
            f"inputs[0].shape must be {expected}: positive integers. Received: {quoted(shape)}",
            details=[problem(["inputs", 0, "shape"], "does not fit the model's input")],
        )
    # The sample dimensions are the model's, so only the rows can be too many.
    if shape[0] > max_rows:
        raise TooManyRows(
            f"inputs[0].shape asks for more rows than a request may hold ({max_rows:,}). "
            f"Received: {shape[0]:,} rows",
            details=[problem(["inputs", 0, "shape", 0], "too many rows")],
        )
    size = math.prod(shape)
    data = tensor.get("data")
    try:
        # float32 from json_numbers is used as it is; lists are read at float64, then cast.
        flat = (data if isinstance(data, np.ndarray) else np.asarray(data, np.float64)).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        flat = None
    if flat is None or flat.size != size or not np.isfinite(flat).all():
        raise InvalidSample(
            f"inputs[0].data must hold {size} finite numbers for shape {shape}. "
            f"Received: {'non-numeric or ragged data' if flat is None else f'{flat.size} values'}",
            details=[problem(["inputs", 0, "data"], "does not match the shape")],
        )
    return flat.astype(np.float32).reshape(shape)


def requested_outputs(payload: dict[str, Any], available: list[str]) -> set[str]:
    """The names of the outputs the request asks for, checked against `available`."""
    requested = payload.get("outputs")
    # None or []: every output, as Triton and KServe answer (the protocol's
    # document allows an empty list).
    if requested is None or requested == []:
        return set(available)
    if not isinstance(requested, list):
        raise InvalidSample(
            f'outputs must be a list of {{"name": ...}} objects, each naming one of '
            f"{available}. Received: {quoted(requested)}",
            details=[problem(["outputs"], "not a list")],
        )
    names = set()
    for index, item in enumerate(requested):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in available:
            raise InvalidSample(
                f'outputs[{index}] must be {{"name": <one of {available}>}}. '
                f"Received: {quoted(item)}",
                details=[problem(["outputs", index, "name"], "unknown output")],
            )
        names.add(name)
    return names


def output_tensors(prediction: Prediction, wanted: set[str]) -> list[dict[str, Any]]:
    """The prediction's output tensors named in `wanted`, `data` flat."""
    outputs = prediction.outputs
    tensors: list[dict[str, Any]] = [
        {"name": "output_0", "datatype": "FP32", "shape": list(outputs.shape),
         "data": outputs.reshape(-1)},
    ]  # fmt: skip
    if prediction.labels is not None:
        tensors.append({"name": "label", "datatype": _label_datatype(prediction.labels),
                        "shape": [len(prediction.labels)], "data": prediction.labels})  # fmt: skip
    return [tensor for tensor in tensors if tensor["name"] in wanted]
