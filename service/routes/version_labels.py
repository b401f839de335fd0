"""/v1/models/{name}/labels: TF Serving's version labels (models.serving.version_labels).

`PUT .../labels/{label}` with `{"version": N}` moves a label (a key with
every right: service.auth refuses a `predict` key), `GET .../labels` lists
them, `GET .../labels/{label}` is TF Serving's status of the version it points
at plus the label's history, `DELETE` removes it. Elsewhere `/labels/{label}`
stands where `/versions/{v}` does: those routes call `pinned_version`.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import Field

from models.errors import NotFound, ValidationFailed, problem
from models.serving.version_labels import VersionLabels
from models.training.spec import StrictModel
from models.validation import validate
from service.bodies import parse_json, request_body
from service.context import services

blueprint = Blueprint("labels", __name__, url_prefix="/v1/models")
EXTENSION = "fitserve.labels"


class LabelRequest(StrictModel):
    """Where a label points: a published version of the model."""

    version: Annotated[int, Field(ge=1)]


def install_labels(app: Flask, labels: VersionLabels) -> VersionLabels:
    app.extensions[EXTENSION] = labels
    return labels


def version_labels() -> VersionLabels:
    labels: VersionLabels = current_app.extensions[EXTENSION]
    return labels


def pinned_version(name: str, version: int | str | None) -> int | None:
    """`pin_version` with this app's labels, for a Flask route."""
    return pin_version(version_labels(), name, version)


def pin_version(labels: VersionLabels, name: str, version: int | str | None) -> int | None:
    """The version a request names: a number as it is, a label (a str, in V1's
    `/labels/{label}`, V2's version segment or gRPC's `model_version`) the
    version it points at now (NotFound naming the model's labels when it has
    no such label), None (the latest) as it is. One lookup per request: the
    caller then pins the number it got, so a move mid-request does not split
    the request."""
    if isinstance(version, str):
        return labels.version_of(name, version)
    return version


@blueprint.get("/<model:name>/labels")
def index(name: str) -> Response:
    """The model's labels and the versions they point at."""
    services().catalog.resolve(name, None)  # a 404 for a model with no versions
    return jsonify({"labels": dict(sorted(version_labels().labels(name).items()))})


@blueprint.get("/<model:name>/labels/<label:label>")
def show(name: str, label: str) -> Response:
    """TF Serving's status of the labelled version, the label and its history."""
    labels = version_labels()
    version = labels.version_of(name, label)
    return jsonify(_label_record(name, label, version, labels))


@blueprint.put("/<model:name>/labels/<label:label>")
def move(name: str, label: str) -> Response:
    """Point the label at a version (created if new); the move is recorded."""
    body = validate(LabelRequest, parse_json(request_body(request)))
    catalog = services().catalog
    versions = catalog.versions(name)
    if not versions:
        catalog.resolve(name, None)  # raises NotFound naming the model
    try:
        catalog.resolve(name, body.version)
    except NotFound as exc:
        # The path names a model that exists; what is wrong is in the body.
        raise ValidationFailed(exc.message, details=[problem(["version"], exc.message)]) from None
    labels = version_labels()
    previous = labels.move(name, label, body.version, g.get("key_role"))
    # Its status and history, and where it pointed before (null when new).
    return jsonify({**_label_record(name, label, body.version, labels), "previous": previous})


@blueprint.delete("/<model:name>/labels/<label:label>")
def remove(name: str, label: str) -> tuple[str, int]:
    """Delete the label (recorded in its history); its version stays."""
    version_labels().remove(name, label, g.get("key_role"))
    return "", 204


def _label_record(name: str, label: str, version: int, labels: VersionLabels) -> dict[str, Any]:
    return {
        "model_version_status": [
            {
                "version": str(version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ],
        "name": name,
        "label": label,
        "version": version,
        "history": labels.history(name, label),
    }
