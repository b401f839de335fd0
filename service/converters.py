"""URL converters: model names and job ids never contain ':', so
`/v1/models/iris:predict` splits cleanly into name and verb."""

from __future__ import annotations

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from models.errors import quoted
from models.ids import MODEL_NAME, anchored, is_model_name


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
