"""/v1/datasets: upload, list, show and delete datasets."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.bodies import dataset_upload
from service.context import services
from service.errors import parsing_request

blueprint = Blueprint("datasets", __name__, url_prefix="/v1/datasets")


@blueprint.post("")
def create() -> tuple[Response, int]:
    body, media_type = dataset_upload(request)
    with parsing_request():
        record, created = services().datasets.save(body, media_type, request.args.get("target"))
    return jsonify(record), 201 if created else 200


@blueprint.get("")
def index() -> Response:
    return jsonify({"datasets": services().datasets.list()})


@blueprint.get("/<dataset_id>")
def show(dataset_id: str) -> Response:
    with parsing_request():
        return jsonify(services().datasets.get(dataset_id))


@blueprint.delete("/<dataset_id>")
def delete(dataset_id: str) -> tuple[str, int]:
    with parsing_request():
        services().datasets.delete(dataset_id)
    return "", 204
