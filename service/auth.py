"""Bearer-key authentication for every route but health checks and the dashboard."""

from __future__ import annotations

import hmac

from flask import Flask, request

from service.errors import Unauthorized

# Health checks, the API's own description, and the dashboard's assets.
OPEN_PATHS = ("/healthz", "/readyz", "/v2/health/", "/static/", "/openapi.json", "/docs")


def install_auth(app: Flask, api_keys: list[str]) -> None:
    keys = [key.encode() for key in api_keys]

    @app.before_request
    def _require_key() -> None:
        path = request.path
        if path == "/" or path.startswith(OPEN_PATHS):
            return
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "This route needs an API key: send 'Authorization: Bearer <key>'. "
                f"Received: {'no Authorization header' if not header else 'a malformed header'}"
            )
        # compare_digest over every key: no early exit that times which one nearly matched.
        matches = [hmac.compare_digest(token.encode(), key) for key in keys]
        if not any(matches):
            raise Unauthorized("The API key is not valid. Received: an unknown key")
