"""Liveness, readiness, and the workers online."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, jsonify

from models.redis_client import redis_trouble
from service.auth import presented_role
from service.context import Services, services

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/v1/workers")
def workers() -> Response:
    """Online workers (device, GPUs, backend, queue and the job in hand), and
    how many serve each queue: 0 says the jobs sent there wait."""
    parts = services()
    online = parts.workers.online()
    return jsonify({"workers": online, "queues": _serving(parts, online)})


def _serving(parts: Services, online: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return parts.workers.serving((parts.settings.queues.cpu, parts.settings.queues.gpu), online)


def _warnings(parts: Services) -> list[str]:
    """What works but waits: a queue no online worker serves."""
    waiting = {parts.settings.queues.cpu: "jobs sent there wait",
               parts.settings.queues.gpu: 'jobs sent there (device "gpu") wait'}  # fmt: skip
    try:
        served = _serving(parts, parts.workers.online())
    except redis.RedisError:  # gone since its ping: the next probe tells
        return []
    return [f"no worker serves queue {queue}: {waiting[queue]}"
            for queue, count in served.items() if not count["workers"]]  # fmt: skip


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Not ready: the reasons, with the failure's own text (paths, host names)
    only for a caller with a valid key; the probe itself needs none. Ready
    (200) with `warnings` when a queue has no worker: the API works, and jobs
    wait until a worker comes. Not ready either until the latest version of
    each model is loaded and warm (models.serving.warm_up); a model that failed
    to load then is a warning, not a wait."""
    parts = services()
    detailed = presented_role() is not None
    problems = []

    def reason(summary: str, exc: Exception) -> str:
        return f"{summary}: {exc}" if detailed else summary

    try:
        parts.redis.ping()
    except Exception as exc:  # any failure to reach the broker means not ready
        trouble = redis_trouble(exc, parts.settings.redis.socket_timeout_s)  # which failure
        problems.append(reason(trouble or "Redis (the job store and queue) unreachable", exc))
    try:
        parts.models.blobs.check()
    except Exception as exc:  # a folder or a bucket: any failure means not ready
        problems.append(reason("model store not writable", exc))
    warming = parts.predictor.warmup.waiting()
    if warming is not None:
        problems.append(warming)
    if problems:
        return jsonify({"status": "unavailable", "reasons": problems}), 503
    warnings = _warnings(parts) + parts.predictor.warmup.warnings(detailed)
    return jsonify({"status": "ready", "warnings": warnings}), 200
