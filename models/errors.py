"""The one exception hierarchy of fitserve. Every error we raise is one of these.

    FitserveError                    internal_error
     ├── BadRequest                  bad_request
     │    ├── MalformedBody          malformed_body
     │    └── InvalidSample          invalid_sample
     ├── Unauthorized                unauthorized           (service.errors: HTTP only)
     ├── NotFound                    not_found
     ├── Conflict                    conflict
     ├── PayloadTooLarge             payload_too_large      (service.errors: HTTP only)
     ├── UnsupportedMediaType        unsupported_media_type
     ├── ValidationFailed            validation_failed
     │    ├── InvalidDataset         invalid_dataset
     │    ├── SpecDatasetMismatch    spec_dataset_mismatch
     │    └── SpecError              validation_failed      (a spec rule across fields; also a
     │                                                       ValueError, for pydantic)
     ├── ServiceUnavailable          service_unavailable
     ├── ApiError                    api_error              (service.client: the API's answer)
     └── JobInterrupted              (never reaches HTTP: stops a running job)
          ├── JobCancelled           job_cancelled          the job was cancelled
          │    └── LeaseLost         lease_lost             another worker owns the job now
          └── WorkerStopping         worker_stopping        the worker is shutting down

     UnsupportedLayer                (models.serving.forward: internal, means "serve with Keras")

Errors carry a code and a message, never an HTTP status: `service.errors`
maps codes to statuses. Messages follow the Keras API guidelines: what
happened, what was expected, and `Received: ...`. `details` lists each problem
as `{"loc": [...], "msg": ...}`, where `loc` is a path inside the input that
was parsed (a dataset's `["line", 7, "age"]`); the HTTP layer says where in
the request that input was (`within("body")`, `["query", "target"]`).
"""

from __future__ import annotations

from typing import Any, Self

Loc = list[str | int]


class FitserveError(Exception):
    code = "internal_error"

    def __init__(
        self, message: str, details: list[dict[str, Any]] | None = None, *,
        argument: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.details = details or []
        # Which input of the call the details point into, when not the main one
        # (a CSV's `target` column name, a `content_type`): the HTTP layer places it.
        self.argument = argument

    def within(self, *prefix: str | int) -> Self:
        """The same error, its problems located inside `prefix` (e.g. "body")."""
        self.details = [{**detail, "loc": [*prefix, *detail["loc"]]} for detail in self.details]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(FitserveError):
    code = "bad_request"


class MalformedBody(BadRequest):
    code = "malformed_body"


class InvalidSample(BadRequest):
    code = "invalid_sample"


class NotFound(FitserveError):
    code = "not_found"


class Conflict(FitserveError):
    code = "conflict"


class UnsupportedMediaType(FitserveError):
    code = "unsupported_media_type"


class ValidationFailed(FitserveError):
    code = "validation_failed"


class InvalidDataset(ValidationFailed):
    code = "invalid_dataset"


class SpecDatasetMismatch(ValidationFailed):
    code = "spec_dataset_mismatch"


class SpecError(ValidationFailed, ValueError):
    """A spec rule across fields, raised inside pydantic validation with the
    path of the field to blame (a ValueError, so pydantic reports it)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message, [problem(list(loc), message)])
        self.loc = loc


class ServiceUnavailable(FitserveError):
    code = "service_unavailable"


class JobInterrupted(FitserveError):
    """A running job must stop before it finishes; raised inside training."""


class JobCancelled(JobInterrupted):
    code = "job_cancelled"


class LeaseLost(JobCancelled):
    """Another worker now owns the job: this one must stop and leave it be."""

    code = "lease_lost"


class WorkerStopping(JobInterrupted):
    """The worker was asked to stop while a job ran: the job goes back to its queue."""

    code = "worker_stopping"


def problem(loc: Loc, msg: str) -> dict[str, Any]:
    """One entry of an error's `details` list."""
    return {"loc": list(loc), "msg": msg}
