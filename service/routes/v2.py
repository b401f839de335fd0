"""The Open Inference Protocol (KServe V2) over HTTP, on the same published versions.

What a request means and how it is answered is service.open_inference's,
shared with gRPC (service.grpc_api); here is the HTTP side: JSON bodies, and
tensors as binary data too (the binary tensor data extension:
models.serving.binary_tensors). Errors take the protocol's shape,
`{"error": "<message>", "code", "details"}` (service.error_handlers, for
every status of every /v2 URL).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from models.datasets import json_numbers
from models.serving import binary_tensors
from models.serving.loaded_model import Prediction
from service import open_inference
from service.bodies import parse_json, request_body
from service.context import services
from service.json_provider import dump_bytes
from service.metrics import count_predictions
from service.open_inference import INPUT_NAME
from service.prediction_sampling import log_prediction
from service.routes.version_labels import pinned_version

blueprint = Blueprint("v2", __name__, url_prefix="/v2")


@blueprint.get("")
@blueprint.get("/")  # the protocol's OpenAPI document spells it `/v2/`
def server_metadata() -> Response:
    """Server metadata: name, version and the protocol extensions supported."""
    return jsonify(open_inference.server_metadata())


@blueprint.get("/health/live")
def live() -> Response:
    return jsonify({"live": True})


@blueprint.get("/health/ready")
def ready() -> tuple[Response, int]:
    ok = open_inference.server_ready(services())
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
    return jsonify(open_inference.model_metadata(catalog, name, pinned_version(name, version)))


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
    x = open_inference.input_tensor(payload, loaded, parts.settings.limits.max_predict_rows)
    # What to answer with, checked before any work is done.
    names = open_inference.output_names(loaded)
    wanted = open_inference.requested_outputs(payload, names)
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
        "outputs": open_inference.output_tensors(prediction, wanted),
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
