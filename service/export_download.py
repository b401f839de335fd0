"""The export download: `GET /v1/models/{name}/versions/{v}/export?format=...`
(the route is in service.routes.models; the builds in models.serving.exporter)."""

from __future__ import annotations

from flask import Response, current_app, request, send_file

from models.errors import ValidationFailed, problem, quoted
from models.serving.exporter import FORMATS, Exporter
from service.context import services

EXTENSION = "fitserve.exports"
DEFAULT_FORMAT = "keras"


def exporter() -> Exporter:
    """This app's exporter, made on first use (its locks are per process)."""
    found: Exporter | None = current_app.extensions.get(EXTENSION)
    if found is None:
        parts = services()
        made = Exporter(parts.models, parts.redis, parts.settings.redis_prefix,
                        parts.settings.export_time_limit_s)  # fmt: skip
        found = current_app.extensions.setdefault(EXTENSION, made)  # one, if two threads race
    return found


def export_format() -> str:
    """The `format` query parameter: one of FORMATS, `keras` when absent."""
    raw = request.args.get("format") or DEFAULT_FORMAT
    if raw not in FORMATS:
        allowed = ", ".join(repr(name) for name in FORMATS)
        raise ValidationFailed(
            f"format must be one of {allowed}. Received: {quoted(raw)}",
            details=[problem(["query", "format"], f"not one of {allowed}")],
        )
    return raw


def export_response(name: str, version: int) -> Response:
    """The file, streamed from disk (send_file reads it in blocks), named
    `<name>-<version>.keras`, `...-saved_model.zip` or `....onnx`."""
    format_name = export_format()  # a 422 before any lookup or build
    export = exporter().export(name, version, format_name)
    response = send_file(export.path, mimetype=export.media_type, as_attachment=True,
                         download_name=export.filename)  # fmt: skip
    response.headers["Fitserve-Model-Version"] = str(version)
    return response
