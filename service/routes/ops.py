"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from service.context import services

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/v1/workers")
def workers() -> Response:
    """Online workers: device, GPUs, backend, queue and the job in hand."""
    return jsonify({"workers": services().workers.online()})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    parts = services()
    problems = []
    try:
        parts.redis.ping()
    except Exception as exc:  # any failure to reach the broker means not ready
        problems.append(f"Redis (the job store and queue) unreachable: {exc}")
    try:
        parts.models.blobs.check()
    except Exception as exc:  # a folder or a bucket: any failure means not ready
        problems.append(f"model store not writable: {exc}")
    if problems:
        return jsonify({"status": "unavailable", "reasons": problems}), 503
    return jsonify({"status": "ready"}), 200
