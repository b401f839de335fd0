"""URL converters: model names and job ids never contain ':', so
`/v1/models/iris:predict` splits cleanly into name and verb."""

from __future__ import annotations

from werkzeug.routing import BaseConverter


class ModelNameConverter(BaseConverter):
    regex = r"[a-z0-9][a-z0-9._-]{0,63}"
