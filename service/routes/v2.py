"""The Open Inference Protocol (KServe V2) over the same published versions.

Tensors travel as `{"name", "shape", "datatype", "data"}` with `data` flat in
row-major order (nested lists are accepted too). Each model has one input
(`x`, FP32, shape [-1, *input_shape]) and answers with `output_0` (FP32,
[-1, outputs]) and, for classifiers, `label` (the decoded class: BYTES for
string classes, INT64 for numeric ones). Tensors may travel as binary data
too (the binary tensor data extension: models.serving.binary_tensors).
Errors take the protocol's shape, `{"error": "<message>", "code", "details"}`
(service.error_handlers, for every status of every /v2 URL).
"""

from __future__ import annotations

import math
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request

from models.datasets import json_numbers
from models.errors import InvalidSample, MalformedBody, problem, quoted
from models.serving import binary_tensors
from models.serving.loaded_model import LoadedModel, Prediction
from service.bodies import parse_json, request_body
from service.context import services
from service.json_provider import dump_bytes
from service.metrics import count_predictions
from service.prediction_sampling import log_prediction
from service.routes.version_labels import pinned_version

blueprint = Blueprint("v2", __name__, url_prefix="/v2")

# The protocol's extensions this server implements, as Triton names them in
# its server metadata.
EXTENSIONS = ["binary_tensor_data"]
NUMERIC_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64",
                 "UINT8", "UINT16", "UINT32", "UINT64"}  # fmt: skip


@blueprint.get("")
@blueprint.get("/")  # the protocol's OpenAPI document spells it `/v2/`
def server_metadata() -> Response:
    """Server metadata: name, version and the protocol extensions supported."""
    return jsonify(
        {"name": "fitserve", "version": package_version("fitserve"), "extensions": EXTENSIONS}
    )


@blueprint.get("/health/live")
def live() -> Response:
    return jsonify({"live": True})


@blueprint.get("/health/ready")
def ready() -> tuple[Response, int]:
    try:
        services().models.blobs.check()
        # And not while the models' start-up warm-up lasts (as /readyz).
        ok = services().predictor.warmup.done
    except Exception:  # a folder or a bucket: any failure means not ready
        ok = False
    return jsonify({"ready": ok}), 200 if ok else 503


@blueprint.get("/models/<model:name>/ready")
@blueprint.get("/models/<model:name>/versions/<version:version>/ready")
def model_ready(name: str, version: int | str | None = None) -> tuple[Response, int]:
    # Ready: loaded and warm. Asking starts the load and waits up to about a
    # second for it (models.serving.predictor.READY_WAIT_S).
    loaded = services().predictor.ready(name, pinned_version(name, version))
    if loaded is None:
        return jsonify({"name": name, "ready": False}), 503
    return jsonify({"name": name, "version": str(loaded.version), "ready": True}), 200


@blueprint.get("/models/<model:name>")
@blueprint.get("/models/<model:name>/versions/<version:version>")
def metadata(name: str, version: int | str | None = None) -> Response:
    catalog = services().catalog
    resolved = catalog.resolve(name, pinned_version(name, version))
    details = catalog.metadata(name, resolved)
    outputs = [_tensor_metadata("output_0", "FP32", [details["outputs"]])]
    if details["classes"]:
        kind = "BYTES" if isinstance(details["classes"][0], str) else "INT64"
        outputs.append(_tensor_metadata("label", kind, []))
    return jsonify(
        {
            "name": name,
            "versions": [str(v) for v in catalog.versions(name)],
            "platform": "keras",
            "inputs": [_tensor_metadata("x", "FP32", details["input_shape"])],
            "outputs": outputs,
        }
    )


@blueprint.post("/models/<model:name>/infer")
@blueprint.post("/models/<model:name>/versions/<version:version>/infer")
def infer(name: str, version: int | str | None = None) -> Response:
    parts = services()
    split = binary_tensors.split_body(
        request_body(request), request.headers.get(binary_tensors.HEADER)
    )
    payload = None if split.json is None else _parse_infer(split)
    # The one place the model's name and version are resolved to a loaded version.
    # A label in the version segment (service.converters) is looked up once here.
    loaded = parts.predictor.get(name, pinned_version(name, version))
    if payload is None:  # a raw binary request: its shape comes from the model
        payload = binary_tensors.raw_request(
            split.binary, INPUT_NAME, list(loaded.metadata["input_shape"])
        )
    x = _input_tensor(payload, loaded, parts.settings.limits.max_predict_rows)
    # What to answer with, checked before any work is done.
    names = ["output_0"] if loaded.encoding.task == "regression" else ["output_0", "label"]
    wanted = _requested_outputs(payload, names)
    binary = binary_tensors.binary_outputs(payload, [name for name in names if name in wanted])
    # The one place the prediction is made.
    prediction = loaded.run(x)
    count_predictions(name, len(prediction.outputs))
    log_prediction(parts, name, x, prediction, "v2")  # sampled; off the request path
    return _infer_response(payload, name, prediction, wanted, binary)


def _infer_response(
    payload: dict[str, Any], name: str, prediction: Prediction, wanted: set[str], binary: set[str]
) -> Response:
    body: dict[str, Any] = {
        "model_name": name,
        "model_version": str(prediction.version),
        "outputs": [tensor for tensor in _output_tensors(prediction) if tensor["name"] in wanted],
    }
    if isinstance(payload.get("id"), str):
        body["id"] = payload["id"]
    if not binary:
        return Response(dump_bytes(body), mimetype="application/json")
    tensors = binary_tensors.encode_outputs(body, binary)
    header = dump_bytes(body)
    # A list: werkzeug sums its parts for Content-Length, and nothing is copied into one.
    response = Response([header, *tensors], mimetype="application/octet-stream")
    response.headers[binary_tensors.HEADER] = str(len(header))
    return response


def _parse_infer(split: binary_tensors.InferBody) -> Any:
    """The JSON (the body, or the header before binary data), each binary
    input's tensor attached as its `data`."""
    if split.has_header:
        payload = parse_json(split.json)  # type: ignore[arg-type]
    else:
        payload = _parse_json_infer(split.body)
    binary_tensors.attach_binary_inputs(payload, split.binary, split.has_header)
    return payload


def _parse_json_infer(body: bytes | bytearray) -> Any:
    """The request, with inputs[0].data read without a Python object per
    number when it is a rectangular array of plain numbers (json_numbers)."""
    fast = json_numbers.loads(body, parse_json)
    if fast is not None and isinstance(fast.payload, dict):
        tensors = fast.payload.get("inputs")
        if isinstance(tensors, list) and tensors and fast.take(tensors[0], "data"):
            return fast.payload
    del fast
    return parse_json(body)


INPUT_NAME = "x"


def _tensor_metadata(name: str, datatype: str, sample_shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [-1, *sample_shape]}


def _input_tensor(payload: Any, loaded: LoadedModel, max_rows: int) -> np.ndarray:
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
        raise InvalidSample(
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


def _output_tensors(prediction: Prediction) -> list[dict[str, Any]]:
    outputs = prediction.outputs
    tensors: list[dict[str, Any]] = [
        {"name": "output_0", "datatype": "FP32", "shape": list(outputs.shape),
         "data": outputs.reshape(-1)},
    ]  # fmt: skip
    if prediction.labels is not None:
        kind = "BYTES" if prediction.labels and isinstance(prediction.labels[0], str) else "INT64"
        tensors.append({"name": "label", "datatype": kind, "shape": [len(prediction.labels)],
                        "data": prediction.labels})  # fmt: skip
    return tensors


def _requested_outputs(payload: dict[str, Any], available: list[str]) -> set[str]:
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
