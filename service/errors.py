"""One place that turns every error into API.md's JSON error body."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from models.errors import FitserveError, PayloadTooLarge, ServiceUnavailable
from service.bodies import upload_limit_message

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FitserveError, _fitserve_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(redis.ConnectionError, _redis_down)
    app.register_error_handler(redis.TimeoutError, _redis_down)
    # What Celery raises when it cannot hand a job to the broker.
    app.register_error_handler(kombu.exceptions.OperationalError, _redis_down)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def error_response(error: FitserveError) -> tuple[Response, int]:
    return jsonify(error.to_dict()), error.status


def _fitserve_error(error: FitserveError) -> tuple[Response, int]:
    if error.status >= 500:
        log.error("server error: %s", error.message)
    return error_response(error)


def _too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return error_response(PayloadTooLarge(upload_limit_message(limit)))


def _redis_down(error: Exception) -> tuple[Response, int]:
    # Job state and the queue live in Redis; datasets and prediction do not.
    log.error("Redis unreachable: %s", error)
    return error_response(
        ServiceUnavailable(
            "The job store and queue (Redis) cannot be reached, so jobs can be neither "
            "submitted nor read; prediction still works. Try again shortly. "
            f"Received: {type(error).__name__}: {error}"
        )
    )


def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    body = {"error": {"code": code, "message": error.description or error.name, "details": []}}
    return jsonify(body), status


def _unexpected(error: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return jsonify(
        {
            "error": {
                "code": "internal_error",
                "message": "An unexpected server error occurred; it has been logged.",
                "details": [],
            }
        }
    ), 500
