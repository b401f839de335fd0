"""The one exception hierarchy of fitserve. Every error we raise is one of these.

    FitserveError                    internal_error
     ├── BadRequest                  bad_request
     │    ├── MalformedBody          malformed_body
     │    └── InvalidSample          invalid_sample
     ├── Unauthorized                unauthorized           (service.errors: HTTP only)
     ├── Forbidden                   forbidden              (service.errors: HTTP only)
     ├── NotFound                    not_found
     ├── Conflict                    conflict
     ├── PayloadTooLarge             payload_too_large      (service.errors: HTTP only)
     ├── UnsupportedMediaType        unsupported_media_type
     ├── ValidationFailed            validation_failed
     │    ├── InvalidDataset         invalid_dataset
     │    ├── InvalidModelFile       invalid_model_file     (a `.keras` file that does not read)
     │    ├── SpecDatasetMismatch    spec_dataset_mismatch
     │    └── SpecError              validation_failed      (a spec rule across fields; also a
     │                                                       ValueError, for pydantic)
     ├── ServiceUnavailable          service_unavailable    (may say when to retry)
     ├── DamagedStore                damaged_store          (a stored object is unreadable)
     ├── ApiError                    api_error              (service.client: the API's answer)
     ├── SearchFailed                search_failed          (a search job's: no trial to publish)
     └── JobInterrupted              (never reaches HTTP: stops a running job)
          ├── JobCancelled           job_cancelled          the job was cancelled
          │    └── LeaseLost         lease_lost             another worker owns the job now
          └── WorkerStopping         worker_stopping        the worker is shutting down

     UnsupportedLayer                (models.layers.serving_steps: internal, "serve with Keras")

Errors carry a code and a message, never an HTTP status (service.errors maps
codes to statuses). Messages say what happened, what was expected, and
`Received: ...` (Keras API guidelines), quoting what was received through
`quoted`, which keeps a few items: a hostile body must not come back whole.
`details` lists each problem as `{"loc": [...], "msg": ...}`, `loc` a path
inside the parsed input; the HTTP layer says where in the request it was.
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


class InvalidModelFile(ValidationFailed):
    """A `.keras` file that is not what its own config says (models.serving.keras_file)."""

    code = "invalid_model_file"


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

    def __init__(
        self, message: str, details: list[dict[str, Any]] | None = None, *,
        retry_after_s: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message, details)
        # Sent as `Retry-After` when set: the condition is expected to pass.
        self.retry_after_s = retry_after_s


class DamagedStore(FitserveError):
    """An object in the store cannot be read as what it should be (a manifest
    that is not JSON): a server fault, named so an operator can find it."""

    code = "damaged_store"


class SearchFailed(FitserveError):
    """A search or k-fold job that trained but has nothing to publish, or
    cannot train where it landed."""

    code = "search_failed"


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


MOST_ITEMS = 5
MOST_CHARS = 80


def quoted(value: Any, most_items: int = MOST_ITEMS, most_chars: int = MOST_CHARS) -> str:
    """`value` as a message quotes it: the first `most_items` items of a list
    (or keys of a dict) and then how many there were in all, a long text cut
    at `most_chars`. `[1, 2, 3, 4, 5, ... (1,000 in all)]`"""
    if isinstance(value, list | tuple | set | frozenset | dict):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
        # Items nested inside are quoted shorter still, so the whole stays short.
        if isinstance(value, dict):
            shown = [f"{quoted(key, 3, 20)}: {quoted(value[key], 3, 20)}"
                     for key in items[:most_items]]  # fmt: skip
        else:
            shown = [quoted(item, 3, 20) for item in items[:most_items]]
        if len(items) > most_items:
            shown.append(f"... ({len(items):,} in all)")
        opening, closing = ("[", "]") if isinstance(value, list | tuple) else ("{", "}")
        return opening + ", ".join(shown) + closing
    text = repr(value)
    if len(text) <= most_chars:
        return text
    return f"{text[: most_chars - 3]}... ({len(text):,} characters)"
