"""A fast lane for the request this service answers most: a small JSON
`:predict` that succeeds, answered straight from the WSGI environ, since
Flask's request and response machinery costs more than the prediction:

    POST /v1/models/<name>[/versions/<n>]:predict
    Content-Type: application/json (or none), a Content-Length of at most
    MOST_BYTES, no Content-Encoding, no query, Accept absent or `*/*`, a valid key.

It does what the Flask route and its hooks do, in the same order and with the
same functions, and answers the same bytes and headers (held equal by
tests/service/test_fast_predict.py). Anything else, and any request that
would not be a 200, goes to Flask untouched (its body put back), so every
error keeps its one path: the lane answers nothing but successes.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.ids import MODEL_NAME
from models.serving import samples
from service.auth import EXTENSION as KEYS
from service.auth import Keys
from service.bodies import parse_json
from service.metrics import count_predictions, observe_request
from service.prediction_sampling import log_prediction_outside_flask
from service.render import CHUNK_ROWS, predictions_json

if TYPE_CHECKING:
    from flask import Flask

    from service.context import Services

# The two routes the lane answers, as the URL map names them (the metrics'
# `route` label): tests check that they are the rules Flask would match.
LATEST_ROUTE = "/v1/models/<model:name>:predict"
VERSION_ROUTE = "/v1/models/<model:name>/versions/<int:version>:predict"
PATH = re.compile(rf"/v1/models/({MODEL_NAME.pattern})(?:/versions/([1-9][0-9]{{0,17}}))?:predict")
# A body this large or larger takes Flask's path: its parsing, not the
# request's overhead, is what it costs then.
MOST_BYTES = 64 * 1024
JSON_TYPES = ("application/json", "")
ANY_TYPE = (None, "*/*", "")


class FastPredict:
    """Called with every request's environ first (service.wsgi); answers the
    requests it can and returns None for the rest, which Flask then answers."""

    def __init__(self, app: Flask) -> None:
        self.parts: Services = app.extensions["fitserve"]
        self.keys: Keys = app.extensions[KEYS]
        limit = app.config.get("MAX_CONTENT_LENGTH") or MOST_BYTES
        self.most_bytes = min(MOST_BYTES, limit)
        self.most_rows = self.parts.settings.limits.max_predict_rows

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes] | None:
        started = time.perf_counter()
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        path = environ.get("PATH_INFO", "")
        match = PATH.fullmatch(path)
        if (
            match is None
            or environ.get("QUERY_STRING")
            or environ.get("HTTP_CONTENT_ENCODING")
            or environ.get("CONTENT_TYPE", "") not in JSON_TYPES
            or environ.get("HTTP_ACCEPT") not in ANY_TYPE
        ):
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.most_bytes:
            return None
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        role = self.keys.role_of(token) if scheme.lower() == "bearer" and token else None
        if role is None:
            return None  # Flask's 401, logged and counted there
        body = environ["wsgi.input"].read(int(length))
        name, version = match[1], (int(match[2]) if match[2] else None)
        try:
            if len(body) != int(length):
                raise EOFError("the body ended early")
            loaded = self.parts.predictor.get(name, version)
            x, layout = samples.from_json_body(
                body, loaded.metadata["input_shape"], self.most_rows, parse_json
            )
            prediction = loaded.run(x)
            if len(prediction.outputs) > CHUNK_ROWS:
                raise OverflowError("an answer Flask's route streams in chunks")
            # TF Serving answers the row format with "predictions", the columnar with "outputs".
            key = "predictions" if layout == "row" else "outputs"
            payload = predictions_json(prediction.outputs, prediction.labels, key)
        except Exception:  # Flask answers it, its way: the same error as ever
            environ["wsgi.input"] = io.BytesIO(body)
            return None
        start_response("200 OK", [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Fitserve-Model-Version", str(prediction.version)),
            ("X-Content-Type-Options", "nosniff"),
        ])  # fmt: skip
        count_predictions(name, len(prediction.outputs))
        log_prediction_outside_flask(self.parts, name, x, prediction, "v1", started, role)
        route = LATEST_ROUTE if version is None else VERSION_ROUTE
        observe_request("POST", path, route, 200, time.perf_counter() - started)
        return [payload]
