"""The one exception hierarchy of fitserve, mapped to JSON by one handler.

    FitserveError                    500 internal_error
     ├── BadRequest                  400 bad_request
     │    ├── MalformedBody          400 malformed_body
     │    └── InvalidSample          400 invalid_sample
     ├── Unauthorized                401 unauthorized
     ├── NotFound                    404 not_found
     ├── Conflict                    409 conflict
     ├── PayloadTooLarge             413 payload_too_large
     ├── UnsupportedMediaType        415 unsupported_media_type
     ├── ValidationFailed            422 validation_failed
     │    ├── InvalidDataset         422 invalid_dataset
     │    └── SpecDatasetMismatch    422 spec_dataset_mismatch
     ├── ServiceUnavailable          503 service_unavailable
     └── JobCancelled                (never reaches HTTP: stops a training run)

Messages follow the Keras API guidelines: what happened, what was expected,
and `Received: ...`. `details` lists each problem as `{"loc": [...], "msg": ...}`
where `loc` is a JSON path into the request.
"""

from __future__ import annotations

from typing import Any

Loc = list[str | int]


class FitserveError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(FitserveError):
    status = 400
    code = "bad_request"


class MalformedBody(BadRequest):
    code = "malformed_body"


class InvalidSample(BadRequest):
    code = "invalid_sample"


class Unauthorized(FitserveError):
    status = 401
    code = "unauthorized"


class NotFound(FitserveError):
    status = 404
    code = "not_found"


class Conflict(FitserveError):
    status = 409
    code = "conflict"


class PayloadTooLarge(FitserveError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(FitserveError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(FitserveError):
    status = 422
    code = "validation_failed"


class InvalidDataset(ValidationFailed):
    code = "invalid_dataset"


class SpecDatasetMismatch(ValidationFailed):
    code = "spec_dataset_mismatch"


class ServiceUnavailable(FitserveError):
    status = 503
    code = "service_unavailable"


class JobCancelled(FitserveError):
    code = "job_cancelled"


def problem(loc: Loc, msg: str) -> dict[str, Any]:
    """One entry of an error's `details` list."""
    return {"loc": list(loc), "msg": msg}
