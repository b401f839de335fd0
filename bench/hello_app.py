"""The floor under `make bench-serve`'s one-row figures: hello-worlds served
as fitserve is (granian, the same workers, threads and flags), so the wrk
table shows what the server and Flask cost before fitserve does anything.

    granian --interface=wsgi bench.hello_app:bare      (a WSGI callable)
    granian --interface=wsgi bench.hello_app:flask_app (Flask, one route)

Each reads the request body (as `:predict` does) and answers a small JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request

ANSWER = b'{"predictions":[[0.5]]}'


def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI callable and nothing else: the server's own floor."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(ANSWER)))])  # fmt: skip
    return [ANSWER]


flask_app = Flask(__name__)


@flask_app.post("/predict")
def predict() -> Response:
    """Flask's routing, request and response objects around the same answer."""
    request.get_data()
    return Response(ANSWER, content_type="application/json")


@flask_app.get("/ping")
def ping() -> Response:
    return Response(b"ok")
