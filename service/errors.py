"""Where HTTP meets the error tree (models.errors): each error code's status,
the errors only HTTP has, and placing a parser's problems in the request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from models import errors
from models.errors import FitserveError


class Unauthorized(FitserveError):
    code = "unauthorized"


class Forbidden(FitserveError):
    """A valid key whose role does not allow the route (service.auth)."""

    code = "forbidden"


class PayloadTooLarge(FitserveError):
    code = "payload_too_large"


# An error's status is its code's, or the nearest ancestor's that has one.
STATUS_BY_CODE = {
    errors.FitserveError.code: 500,
    errors.BadRequest.code: 400,
    Unauthorized.code: 401,
    Forbidden.code: 403,
    errors.NotFound.code: 404,
    errors.Conflict.code: 409,
    PayloadTooLarge.code: 413,
    errors.UnsupportedMediaType.code: 415,
    errors.ValidationFailed.code: 422,
    errors.ServiceUnavailable.code: 503,
}


def http_status(error: FitserveError) -> int:
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if code in STATUS_BY_CODE:
            return STATUS_BY_CODE[code]
    return 500


# Where in a request each named input of a parser comes from; the main
# input (a dataset or a CSV of samples) is the body.
REQUEST_PLACES: dict[str | None, tuple[str, ...]] = {
    None: ("body",),
    "content_type": ("header", "Content-Type"),
    "target": ("query", "target"),
    "dataset_id": ("path", "dataset_id"),
    "page_token": ("query", "page_token"),
}


@contextmanager
def parsing_request() -> Iterator[None]:
    """Parsers locate problems inside what they parsed (a CSV's line 7);
    errors raised in the block say where that is in the request."""
    try:
        yield
    except FitserveError as error:
        error.within(*REQUEST_PLACES[error.argument])
        raise
