"""The service's share of warming a version before it takes traffic.

Past the model's own path (models.serving.warm_up.warm_up), a cold process's
first `:predict` pays for the URL map matching the model's routes (werkzeug
compiles a rule's patterns on its first match) and for rendering the answer
(`Accept` parsing, the response object): most of a first request that finds
the model warm (bench/first_request.py). Both are run here, on the
predictor's loading thread, with no request dispatched: no auth, metrics,
access log or prediction log sees a warm-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from flask import Flask, request

from models.serving.loaded_model import LoadedModel
from models.serving.warm_up import warm_up
from service.json_provider import dump_bytes
from service.render import render_predictions

log = logging.getLogger(__name__)


def warm_requests(app: Flask) -> Callable[[LoadedModel], None]:
    """The predictor's `warm` hook for `app`: the model's serving path, then
    the routes and the rendering a request for it goes through."""

    def warm(loaded: LoadedModel) -> None:
        warm_up(loaded)  # raises: a version that cannot answer is not served
        try:
            _warm_routes_and_rendering(app, loaded)
        except Exception:  # the model answers; only the first request is slower
            log.exception("warming the routes of model %s failed", loaded.name)

    return warm


def _warm_routes_and_rendering(app: Flask, loaded: LoadedModel) -> None:
    name, version = loaded.name, loaded.version
    adapter = app.url_map.bind("localhost")
    for path in (f"/v1/models/{name}", f"/v1/models/{name}/versions/{version}",
                 f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):  # fmt: skip
        adapter.match(path + (":predict" if path.startswith("/v1") else "/infer"), method="POST")
    x = np.zeros((1, *loaded.metadata["input_shape"]), dtype=np.float32)
    body = dump_bytes({"instances": x})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with app.test_request_context(f"/v1/models/{name}:predict", method="POST", data=body,
                                  headers=headers):  # fmt: skip
        prediction = loaded.run(x)
        response = render_predictions(request, prediction.outputs, prediction.labels, "predictions")
        response.get_data()
