"""URL converters: model names and job ids never contain ':', so
`/v1/models/iris:predict` splits cleanly into name and verb.

The checks behind them (`model_name`, `version_or_label`) are shared with
gRPC (service.grpc_api), whose requests name a model and version as strings:
both refuse the same values with the same messages."""

from __future__ import annotations

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from models import errors
from models.errors import quoted
from models.ids import LABEL_NAME, MODEL_NAME, VERSION, anchored, is_label_name, is_model_name


def model_name(value: str) -> str:
    """`value` when it is a model name, else models.errors.NotFound saying what names look like."""
    if not is_model_name(value):
        raise errors.NotFound(
            f"No model has this name: model names match {anchored(MODEL_NAME)}. "
            f"Received: {quoted(value)}"  # a name may be 64 KiB long
        )
    return value


def version_or_label(value: str) -> int | str:
    """A version number (an int) or a label (a str, resolved by
    service.routes.version_labels.pin_version); else models.errors.NotFound.
    Labels start with a letter, so the two never meet."""
    if VERSION.fullmatch(value):
        return int(value)
    if is_label_name(value):
        return value
    raise errors.NotFound(
        f"No version or label has this name: versions match {anchored(VERSION)}, labels "
        f"{anchored(LABEL_NAME)}. Received: {quoted(value)}"
    )


class ModelNameConverter(BaseConverter):
    """Any path segment without ':' routes to the model routes, and a segment
    that is no model name is a 404 that says so. A converter regex that only
    matched valid names would leave `..`, `a%00b` or `Iris` to Werkzeug's bare
    "URL not found", which does not say what was wrong with the URL."""

    regex = r"[^/:]+"

    def to_python(self, value: str) -> str:
        try:
            return model_name(value)
        except errors.NotFound as error:
            # Werkzeug's NotFound, not ours: routing only turns HTTPExceptions into responses.
            raise NotFound(error.message) from None


class LabelNameConverter(BaseConverter):
    """A version label (`/v1/models/iris/labels/stable`): like model names, a
    segment that is no label name is a 404 that says what labels look like."""

    regex = r"[^/:]+"

    def to_python(self, value: str) -> str:
        if not is_label_name(value):
            raise NotFound(
                f"No label has this name: labels match {anchored(LABEL_NAME)}. "
                f"Received: {quoted(value)}"
            )
        return value


class VersionOrLabelConverter(BaseConverter):
    """V2's version segment (`/v2/models/iris/versions/<v>`): a version number
    or a label (`version_or_label`), since Triton's and KServe's clients put
    `model_version` there as a string."""

    regex = r"[^/:]+"

    def to_python(self, value: str) -> int | str:  # type: ignore[override]
        try:
            return version_or_label(value)
        except errors.NotFound as error:
            raise NotFound(error.message) from None
