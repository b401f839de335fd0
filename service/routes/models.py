"""/v1/models: TF Serving's REST API for the published versions."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request

from models import samples
from models.errors import UnsupportedMediaType
from models.predictor import Prediction
from service.bodies import parse_json, request_body
from service.context import services
from service.json_provider import dump_bytes

blueprint = Blueprint("models", __name__, url_prefix="/v1/models")

RESPONSE_TYPES = ["application/json", "text/csv", "application/x-npy"]


@blueprint.get("")
def index() -> Response:
    store = services().models
    listing = []
    for name in store.names():
        versions = store.versions(name)
        listing.append(
            {
                "name": name,
                "latest_version": versions[-1],
                "versions": versions,
                "task": store.metadata(name, versions[-1])["task"],
            }
        )
    return jsonify({"models": listing})


@blueprint.get("/<model:name>")
@blueprint.get("/<model:name>/versions/<int:version>")
def status(name: str, version: int | None = None) -> Response:
    resolved = services().models.resolve(name, version)
    return jsonify(
        {
            "model_version_status": [
                {
                    "version": str(resolved),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    )


@blueprint.get("/<model:name>/metadata")
@blueprint.get("/<model:name>/versions/<int:version>/metadata")
def metadata(name: str, version: int | None = None) -> Response:
    store = services().models
    resolved = store.resolve(name, version)
    details = store.metadata(name, resolved)
    return jsonify(
        {
            "model_spec": {
                "name": name,
                "version": str(resolved),
                "signature_name": "serving_default",
            },
            "metadata": {**details, "signature_def": _signature(details)},
        }  # fmt: skip
    )


@blueprint.post("/<model:name>:predict")
@blueprint.post("/<model:name>/versions/<int:version>:predict")
def predict(name: str, version: int | None = None) -> Response:
    parts = services()
    loaded = parts.predictor.get(name, version)
    input_shape = loaded.metadata["input_shape"]
    layout = "row"
    if request.mimetype in ("application/json", ""):
        x, layout = samples.from_json(parse_json(request_body(request)), input_shape)
    elif request.mimetype == "text/csv":
        x = samples.from_csv(request_body(request), input_shape)
    elif request.mimetype == "application/x-npy":
        x = samples.from_npy(request_body(request), input_shape)
    else:
        raise UnsupportedMediaType(
            "Predict bodies are application/json, text/csv or application/x-npy. "
            f"Received: {request.mimetype!r}"
        )
    prediction = parts.predictor.predict(name, loaded.version, x)
    response = _render(prediction, layout)
    response.headers["Fitserve-Model-Version"] = str(prediction.version)
    return response


@blueprint.delete("/<model:name>/versions/<int:version>")
def delete(name: str, version: int) -> tuple[str, int]:
    services().models.delete(name, version)
    return "", 204


def _render(prediction: Prediction, layout: str) -> Response:
    accept = request.accept_mimetypes.best_match(RESPONSE_TYPES, default="application/json")
    if accept == "application/x-npy":
        buffer = io.BytesIO()
        np.save(buffer, prediction.outputs)
        return Response(buffer.getvalue(), mimetype="application/x-npy")
    if accept == "text/csv":
        return Response(_csv(prediction), mimetype="text/csv")
    # TF Serving answers the row format with "predictions", the columnar with "outputs".
    body: dict[str, Any] = {"predictions" if layout == "row" else "outputs": prediction.outputs}
    if prediction.labels is not None:
        body["labels"] = prediction.labels
    return Response(dump_bytes(body), mimetype="application/json")


def _csv(prediction: Prediction) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [f"output_{index}" for index in range(prediction.outputs.shape[1])]
    with_labels = prediction.labels is not None
    writer.writerow(columns + (["label"] if with_labels else []))
    for index, row in enumerate(prediction.outputs.tolist()):
        writer.writerow(row + ([prediction.labels[index]] if with_labels else []))  # type: ignore[index]
    return buffer.getvalue()


def _signature(details: dict[str, Any]) -> dict[str, Any]:
    def tensor(shape: list[int]) -> dict[str, Any]:
        dims = [{"size": "-1"}] + [{"size": str(size)} for size in shape]
        return {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dims}}

    return {
        "serving_default": {
            "inputs": {"x": tensor(details["input_shape"])},
            "outputs": {"output_0": tensor([details["outputs"]])},
            "method_name": "tensorflow/serving/predict",
        }
    }
