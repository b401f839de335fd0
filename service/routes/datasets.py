"""/v1/datasets: upload, list, show and delete datasets."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.bodies import dataset_upload
from service.context import services
from service.errors import parsing_request
from service.query import int_arg

blueprint = Blueprint("datasets", __name__, url_prefix="/v1/datasets")


@blueprint.post("")
def create() -> tuple[Response, int]:
    body, media_type = dataset_upload(request)
    with parsing_request():
        record, created = services().datasets.save(body, media_type, request.args.get("target"))
    return jsonify(record), 201 if created else 200


@blueprint.get("")
def index() -> Response:
    """Newest first, a page at a time, as /v1/jobs: `limit`, and the
    `page_token` a page gave as its `next_page_token`."""
    limit = int_arg("limit", 50, 1, 500)
    with parsing_request():
        page, next_token = services().datasets.page(limit, request.args.get("page_token") or None)
    return jsonify({"datasets": page, "next_page_token": next_token})


@blueprint.get("/<dataset_id>")
def show(dataset_id: str) -> Response:
    with parsing_request():
        return jsonify(services().datasets.get(dataset_id))


@blueprint.delete("/<dataset_id>")
def delete(dataset_id: str) -> tuple[str, int]:
    with parsing_request():
        services().datasets.delete(dataset_id)
    return "", 204
