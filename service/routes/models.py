"""/v1/models: TF Serving's REST API for the published versions."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from models.errors import (
    DamagedStore,
    NotFound,
    SpecDatasetMismatch,
    UnsupportedMediaType,
    ValidationFailed,
    problem,
)
from models.records import DatasetRecord
from models.serving import evaluation, samples
from models.settings import Limits
from models.validation import validate
from service.bodies import parse_json, request_body
from service.context import services
from service.errors import PayloadTooLarge, parsing_request
from service.export_download import export_response
from service.metrics import count_predictions
from service.prediction_sampling import log_prediction
from service.render import render_predictions
from service.routes.version_labels import pinned_version, version_labels
from service.schemas import BatchPredictRequest, EvaluateRequest

blueprint = Blueprint("models", __name__, url_prefix="/v1/models")


@blueprint.get("")
def index() -> Response:
    catalog = services().catalog
    listing = []
    for name in catalog.names():
        versions = catalog.versions(name)
        details = None
        # The latest version that is whole: one deleted a moment ago, or whose
        # manifest is damaged (the store logs it), is left out.
        while versions and details is None:
            try:
                details = catalog.metadata(name, versions[-1])
            except (NotFound, DamagedStore):
                versions = versions[:-1]
        if details is None:
            continue  # its last version was deleted a moment ago
        listing.append(
            {
                "name": name,
                "latest_version": versions[-1],
                "versions": versions,
                "task": details.get("task"),
            }
        )
    labels = version_labels().of_models([str(entry["name"]) for entry in listing])
    for entry in listing:
        entry["labels"] = dict(sorted(labels[str(entry["name"])].items()))
    return jsonify({"models": listing})


@blueprint.get("/<model:name>")
@blueprint.get("/<model:name>/versions/<int:version>")
def status(name: str, version: int | None = None) -> Response:
    """TF Serving's version status: AVAILABLE once the version is loaded and
    warm in this process (asking loads it, waiting up to about a second),
    LOADING while it loads, END with the reason when it failed to load."""
    predictor = services().predictor
    resolved = services().catalog.resolve(name, version)
    loaded = predictor.ready(name, resolved)
    failure = None if loaded is not None else predictor.load_failure(name, resolved)
    if loaded is not None:
        state, code, message = "AVAILABLE", "OK", ""
    elif failure is None:
        state, code, message = "LOADING", "OK", ""
    else:
        state, code, message = "END", "UNKNOWN", failure
    return jsonify(
        {
            "model_version_status": [
                {
                    "version": str(resolved),
                    "state": state,
                    "status": {"error_code": code, "error_message": message},
                }
            ]
        }
    )


@blueprint.get("/<model:name>/metadata")
@blueprint.get("/<model:name>/versions/<int:version>/metadata")
@blueprint.get("/<model:name>/labels/<label:label>/metadata")
def metadata(name: str, version: int | None = None, label: str | None = None) -> Response:
    catalog = services().catalog
    resolved = catalog.resolve(name, pinned_version(name, label or version))
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
@blueprint.post("/<model:name>/labels/<label:label>:predict")
def predict(name: str, version: int | None = None, label: str | None = None) -> Response:
    parts = services()
    loaded = parts.predictor.get(name, pinned_version(name, label or version))
    input_shape = loaded.metadata["input_shape"]
    most = parts.settings.limits.max_predict_rows
    layout = "row"
    try:
        if request.mimetype in ("application/json", ""):
            body = request_body(request)
            x, layout = samples.from_json_body(body, input_shape, most, parse_json)
        elif request.mimetype == "text/csv":
            with parsing_request():
                x = samples.from_csv(request_body(request), input_shape, most)
        elif request.mimetype == "application/x-npy":
            x = samples.from_npy(request_body(request), input_shape, most)
        else:
            raise UnsupportedMediaType(
                "Predict bodies are application/json, text/csv or application/x-npy. "
                f"Received: {request.mimetype!r}"
            )
    except samples.TooManyRows as error:
        # 413, as for a body over the upload limit: the request is larger than
        # the server takes, however well formed (the client splits it).
        raise PayloadTooLarge(error.message, error.details) from None
    prediction = loaded.run(x)  # the version resolved above: one lookup per request
    count_predictions(name, len(prediction.outputs))
    # TF Serving answers the row format with "predictions", the columnar with "outputs".
    key = "predictions" if layout == "row" else "outputs"
    response = render_predictions(request, prediction.outputs, prediction.labels, key)
    response.headers["Fitserve-Model-Version"] = str(prediction.version)
    log_prediction(parts, name, x, prediction, "v1")  # sampled; off the request path
    return response


@blueprint.post("/<model:name>:batchPredict")
@blueprint.post("/<model:name>/versions/<int:version>:batchPredict")
@blueprint.post("/<model:name>/labels/<label:label>:batchPredict")
def batch_predict(
    name: str, version: int | None = None, label: str | None = None
) -> tuple[Response, int, dict[str, str]]:
    """Predict every row of a stored dataset on the workers (a `predict` job)."""
    parts = services()
    # The job pins the version (a label's at submit time).
    resolved = parts.catalog.resolve(name, pinned_version(name, label or version))
    batch = validate(BatchPredictRequest, parse_json(request_body(request)))
    record = parts.dataset_named_in_body(batch.dataset)
    details = parts.catalog.metadata(name, resolved)
    _check_sample_shape(record, name, resolved, details["input_shape"])
    _check_batch_outputs(record, int(details["outputs"]), parts.settings.limits)
    job = parts.queue.submit(parts.jobs.create("predict", name, record["id"], version=resolved))
    return jsonify(job), 202, {"Location": url_for("jobs.show", job_id=job["id"])}


@blueprint.post("/<model:name>:evaluate")
@blueprint.post("/<model:name>/versions/<int:version>:evaluate")
@blueprint.post("/<model:name>/labels/<label:label>:evaluate")
def evaluate(name: str, version: int | None = None, label: str | None = None) -> Response:
    """Loss and compiled metrics of a version on a stored, labelled dataset."""
    parts = services()
    loaded = parts.predictor.get(name, pinned_version(name, label or version))
    body = validate(EvaluateRequest, parse_json(request_body(request)))
    record = parts.dataset_named_in_body(body.dataset)
    _check_sample_shape(record, name, loaded.version, loaded.metadata["input_shape"])
    _check_evaluate_size(record, parts.settings.limits)
    dataset = parts.datasets.load(record["id"])
    chunk_rows = parts.settings.limits.evaluate_chunk_rows
    # The serving pass and numpy, in this thread: Keras' own evaluate is not
    # safe to call from concurrent requests.
    response = jsonify(evaluation.evaluate(loaded, dataset, record["id"], chunk_rows))
    response.headers["Fitserve-Model-Version"] = str(loaded.version)
    return response


@blueprint.get("/<model:name>/versions/<int:version>/export")
@blueprint.get("/<model:name>/labels/<label:label>/export")
def export(name: str, version: int | None = None, label: str | None = None) -> Response:
    """The version as a file: `?format=keras` (default), `saved_model` or `onnx`."""
    resolved = services().catalog.resolve(name, pinned_version(name, label or version))
    return export_response(name, resolved)


@blueprint.delete("/<model:name>/versions/<int:version>")
def delete(name: str, version: int) -> tuple[str, int]:
    parts = services()
    # Refused (409) while a label points at it; announced to every process by the store.
    version_labels().delete_version(name, version, lambda: parts.models.delete(name, version))
    parts.catalog.refresh(name)  # this one sees it at once (read your writes)
    return "", 204


def _check_sample_shape(
    record: DatasetRecord, name: str, version: int, input_shape: list[int]
) -> None:
    """A 422 at ["dataset"] when the dataset's samples are not the model's input shape."""
    if list(record["x_shape"]) != list(input_shape):
        message = (
            f"Dataset {record['id']} has samples of shape {record['x_shape']}; model {name!r} "
            f"version {version} takes {input_shape}. Received: dataset={record['id']!r}"
        )
        raise SpecDatasetMismatch(message, details=[problem(["dataset"], message)])


def _check_evaluate_size(record: DatasetRecord, limits: Limits) -> None:
    """A 422 before loading a dataset larger than an API process should hold."""
    values = record["rows"] * math.prod(record["x_shape"])
    if values > limits.max_evaluate_values:
        message = (
            f"Dataset {record['id']} holds {values:,} input values; :evaluate loads at most "
            f"{limits.max_evaluate_values:,} (FITSERVE_LIMITS__MAX_EVALUATE_VALUES): evaluate "
            f"a sample of it. Received: dataset={record['id']!r}"
        )
        raise ValidationFailed(message, details=[problem(["dataset"], message)])


def _check_batch_outputs(record: DatasetRecord, outputs: int, limits: Limits) -> None:
    """A 422 at submit time when the job's outputs (rows x outputs) would pass
    the limit: they are held whole by the worker and stored for download."""
    values = record["rows"] * outputs
    if values > limits.max_batch_predict_values:
        message = (
            f"Dataset {record['id']} has {record['rows']:,} rows and the model has {outputs} "
            f"outputs per row: {values:,} values, more than the "
            f"{limits.max_batch_predict_values:,} one batch prediction may produce (setting "
            "FITSERVE_LIMITS__MAX_BATCH_PREDICT_VALUES); split the dataset. "
            f"Received: dataset={record['id']!r}"
        )
        raise ValidationFailed(message, details=[problem(["dataset"], message)])


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
