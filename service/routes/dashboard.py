"""`/`: the dashboard, a static page (service/static) that calls this API.

The page and its assets need no key (service.auth lets `/` and `/static/`
through); the page asks for the key and sends it on every API call. Its
assets are served by the app's own static route (`/static/`), which the
OpenAPI document leaves out.

The page holds the key, so no other site may frame it (clickjacking), and no
response of the app is sniffed into another type than the one it declares.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

blueprint = Blueprint("dashboard", __name__)


@blueprint.get("/")
def index() -> Response:
    """The dashboard: jobs and their curves, models, prediction and training forms."""
    response = current_app.send_static_file("index.html")
    # The page is small and changes with the code: always revalidate.
    response.cache_control.no_cache = True
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


@blueprint.after_app_request
def no_sniffing(response: Response) -> Response:
    """Every response of the app, errors included."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
