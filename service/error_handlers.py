"""One place that turns every error into API.md's JSON error body, with the
status service.errors gives its code.

Under /v2 the body takes the Open Inference Protocol's shape instead, where
`error` is the message itself (the protocol's error objects, which
tritonclient and KServe's client print): `{"error": "<message>", "code":
"<snake_case>", "details": [...]}`. Every status, whatever raised it (a
route, auth, the upload limit, Redis, a URL no route takes), goes through
`error_body`."""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis
from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from models.errors import FitserveError, ServiceUnavailable, quoted
from models.redis_client import redis_error_in, redis_trouble, refused
from service.bodies import drain, upload_limit_message
from service.errors import PayloadTooLarge, http_status

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FitserveError, _fitserve_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    # Unreachable, silent past its timeout, or refusing writes (out of memory,
    # a read-only replica, snapshots failing): 503s. Other errors a 500.
    app.register_error_handler(redis.RedisError, _redis_error)
    # What Celery raises when it cannot hand a job to the broker.
    app.register_error_handler(kombu.exceptions.OperationalError, _redis_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def error_body(code: str, message: str, details: list[dict[str, Any]]) -> Response:
    """The JSON error body: API.md's shape, or the protocol's on /v2 URLs."""
    if is_oip_path(request.path):
        return jsonify({"error": message, "code": code, "details": details})
    return jsonify({"error": {"code": code, "message": message, "details": details}})


def is_oip_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_response(error: FitserveError) -> tuple[Response, int]:
    response = error_body(error.code, error.message, error.details)
    retry_after_s = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response, http_status(error)


def _fitserve_error(error: FitserveError) -> tuple[Response, int]:
    if getattr(error, "retry_after_s", None) is not None:
        log.warning("busy: %s", error.message)  # a limit doing its work, not a fault
    elif http_status(error) >= 500:
        log.error("server error: %s", error.message)
    return error_response(error)


def _too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    length = request.content_length
    if length is not None and limit is not None and length <= limit:
        # The body is within the upload limit, and a multipart form limit stopped
        # the parser part way through it: read the rest (no more than any upload),
        # or the next request on this keep-alive connection meets a closed socket.
        drain(request.stream, most=length)
        return error_response(PayloadTooLarge(_form_limit_message(length)))
    return error_response(PayloadTooLarge(upload_limit_message(limit)))


def _form_limit_message(length: int) -> str:
    return (
        f"The multipart form breaks a form limit: each field without a filename holds at "
        f"most {request.max_form_memory_size:,} bytes, and a form has at most "
        f"{request.max_form_parts:,} parts. Send the dataset as a 'file' part with a filename. "
        f"Received: a {length:,}-byte form"
    )


def _redis_error(error: Exception) -> tuple[Response, int]:
    # Job state and the queue live in Redis; datasets and prediction do not.
    timeout_s = current_app.extensions["fitserve"].settings.redis.socket_timeout_s
    unavailable = redis_unavailable(error, timeout_s, request.method not in ("GET", "HEAD"))
    if unavailable is None:  # Redis refused our command, not for a state of its own: a bug
        return _unexpected(error)
    return error_response(unavailable)


def redis_unavailable(
    error: Exception, timeout_s: float, writes: bool
) -> ServiceUnavailable | None:
    """A Redis failure as the 503 (or gRPC's UNAVAILABLE) that says what it
    stops, logged; None when Redis refused our command for no state of its own."""
    trouble = redis_trouble(error, timeout_s)
    if trouble is None:
        return None
    log.error("%s: %s", trouble, error)
    if refused(error):
        outcome, advice = "jobs can be neither submitted nor changed until it is fixed", ""
    else:
        outcome, advice = "jobs can be neither submitted nor read", " Try again shortly."
    if writes and isinstance(redis_error_in(error), redis.TimeoutError):
        # The command waits in Redis's socket buffer and runs when Redis resumes.
        advice += " This change may still take effect when Redis answers: look before resending."
    return ServiceUnavailable(
        f"{trouble}, so {outcome}; prediction still works.{advice} "
        f"Received: {type(error).__name__}: {error}"
    )


def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    return error_body(code, _http_message(error), []), status


def _http_message(error: HTTPException) -> str:
    """Werkzeug's own text for a URL no route takes says neither which URL nor
    why; say both. A description set where the error was raised is kept."""
    received = f"Received: {request.method} {quoted(request.path)}"
    if isinstance(error, NotFound) and error.description == NotFound.description:
        return f"No route matches this URL; /openapi.json lists the routes. {received}"
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        methods = ", ".join(sorted(set(error.valid_methods) - {"HEAD", "OPTIONS"}))
        return f"This URL takes {methods}. {received}"
    return error.description or error.name


UNEXPECTED = "An unexpected server error occurred; it has been logged."


def _unexpected(error: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return error_response(FitserveError(UNEXPECTED))
