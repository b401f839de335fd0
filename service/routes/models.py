"""/v1/models: TF Serving's REST API for the published versions."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from models.errors import NotFound, SpecDatasetMismatch, UnsupportedMediaType, problem
from models.serving import samples
from models.validation import validate
from service.bodies import parse_json, request_body
from service.context import services
from service.errors import parsing_request
from service.metrics import count_predictions
from service.render import render_predictions
from service.schemas import BatchPredictRequest

blueprint = Blueprint("models", __name__, url_prefix="/v1/models")


@blueprint.get("")
def index() -> Response:
    catalog = services().catalog
    listing = []
    for name in catalog.names():
        versions = catalog.versions(name)
        try:
            details = catalog.metadata(name, versions[-1]) if versions else None
        except NotFound:
            details = None
        if details is None:
            continue  # its last version was deleted a moment ago
        listing.append(
            {
                "name": name,
                "latest_version": versions[-1],
                "versions": versions,
                "task": details["task"],
            }
        )
    return jsonify({"models": listing})


@blueprint.get("/<model:name>")
@blueprint.get("/<model:name>/versions/<int:version>")
def status(name: str, version: int | None = None) -> Response:
    resolved = services().catalog.resolve(name, version)
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
    catalog = services().catalog
    resolved = catalog.resolve(name, version)
    details = catalog.metadata(name, resolved)
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
        with parsing_request():
            x = samples.from_csv(request_body(request), input_shape)
    elif request.mimetype == "application/x-npy":
        x = samples.from_npy(request_body(request), input_shape)
    else:
        raise UnsupportedMediaType(
            "Predict bodies are application/json, text/csv or application/x-npy. "
            f"Received: {request.mimetype!r}"
        )
    prediction = loaded.run(x)  # the version resolved above: one lookup per request
    count_predictions(name, len(prediction.outputs))
    # TF Serving answers the row format with "predictions", the columnar with "outputs".
    key = "predictions" if layout == "row" else "outputs"
    response = render_predictions(request, prediction.outputs, prediction.labels, key)
    response.headers["Fitserve-Model-Version"] = str(prediction.version)
    return response


@blueprint.post("/<model:name>:batchPredict")
@blueprint.post("/<model:name>/versions/<int:version>:batchPredict")
def batch_predict(name: str, version: int | None = None) -> tuple[Response, int, dict[str, str]]:
    """Predict every row of a stored dataset on the workers (a `predict` job)."""
    parts = services()
    resolved = parts.catalog.resolve(name, version)  # the job pins the version
    batch = validate(BatchPredictRequest, parse_json(request_body(request)))
    record = parts.dataset_named_in_body(batch.dataset)
    input_shape = parts.catalog.metadata(name, resolved)["input_shape"]
    if list(record["x_shape"]) != list(input_shape):
        message = (
            f"Dataset {record['id']} has samples of shape {record['x_shape']}; model {name!r} "
            f"version {resolved} takes {input_shape}. Received: dataset={record['id']!r}"
        )
        raise SpecDatasetMismatch(message, details=[problem(["dataset"], message)])
    job = parts.queue.submit(parts.jobs.create("predict", name, record["id"], version=resolved))
    return jsonify(job), 202, {"Location": url_for("jobs.show", job_id=job["id"])}


@blueprint.delete("/<model:name>/versions/<int:version>")
def delete(name: str, version: int) -> tuple[str, int]:
    parts = services()
    parts.models.delete(name, version)  # announced to every process by the store
    parts.catalog.refresh(name)  # this one sees it at once (read your writes)
    return "", 204


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
