"""GET /v1/models/{name}/predictions: the sampled prediction log, read back.

`since` is an RFC 3339 time with its offset (default: an hour ago) or the
`next` cursor of an earlier page; records come oldest first, at most `limit`
(default 100, at most 1000) a page. `next` is null once everything stored
after `since` was returned: to follow the log, ask again later from the last
record's time. A record reaches the store when its process flushes (every
FITSERVE_PREDICTION_LOG__FLUSH_S); this process's own are flushed before the
read, so what it just logged is there.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from models.errors import ValidationFailed, problem, quoted
from models.storage.prediction_records import Position, parse_since, rfc3339
from service.context import services
from service.query import int_arg

blueprint = Blueprint("predictions", __name__, url_prefix="/v1/models")

DEFAULT_SINCE_S = 3600.0


@blueprint.get("/<model:name>/predictions")
def index(name: str) -> Response:
    """The sampled prediction log of a model, oldest first from `since`."""
    parts = services()
    after = _since()
    limit = int_arg("limit", 100, 1, 1000)
    parts.prediction_log.flush()  # read your writes, in this process
    records, following = parts.prediction_records.read(name, after, limit)
    return jsonify({"records": records, "next": following})


def _since() -> Position:
    raw = request.args.get("since")
    if raw is None or raw == "":
        return rfc3339(int((time.time() - DEFAULT_SINCE_S) * 1000)), "", -1
    try:
        return parse_since(raw)
    except ValueError as error:
        raise ValidationFailed(
            f"{error}. Received: {quoted(raw)}",
            details=[problem(["query", "since"], "not an RFC 3339 time or a cursor")],
        ) from None
