"""URL converters: model names and job ids never contain ':', so
`/v1/models/iris:predict` splits cleanly into name and verb."""

from __future__ import annotations

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from models.errors import quoted
from models.ids import LABEL_NAME, MODEL_NAME, VERSION, anchored, is_label_name, is_model_name


class ModelNameConverter(BaseConverter):
    """Any path segment without ':' routes to the model routes, and a segment
    that is no model name is a 404 that says so. A converter regex that only
    matched valid names would leave `..`, `a%00b` or `Iris` to Werkzeug's bare
    "URL not found", which does not say what was wrong with the URL."""

    regex = r"[^/:]+"

    def to_python(self, value: str) -> str:
        if not is_model_name(value):
            # Werkzeug's NotFound, not ours: routing only turns HTTPExceptions into responses.
            raise NotFound(
                f"No model has this name: model names match {anchored(MODEL_NAME)}. "
                f"Received: {quoted(value)}"  # a name may be 64 KiB long
            )
        return value


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
    (an int) or a label (a str, resolved by service.routes.version_labels.pinned_version),
    since Triton's and KServe's clients put `model_version` there as a string.
    Labels start with a letter, so the two never meet."""

    regex = r"[^/:]+"

    def to_python(self, value: str) -> int | str:  # type: ignore[override]
        if VERSION.fullmatch(value):
            return int(value)
        if is_label_name(value):
            return value
        raise NotFound(
            f"No version or label has this name: versions match {anchored(VERSION)}, labels "
            f"{anchored(LABEL_NAME)}. Received: {quoted(value)}"
        )
