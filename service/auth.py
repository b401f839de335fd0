"""Bearer-key authentication for every route but health checks and the dashboard,
and the roles of keys.

An entry of `FITSERVE_API_KEYS` is a key with every right, or `predict:<key>`:
a key that may only predict, evaluate and read models (GET of `/v1/models...`,
POST `...:predict` and `...:evaluate`, and V2's metadata, ready and infer),
for the clients of a model that must not train, upload or delete. Any other
route is a 403 for it. A request without a valid key is a 401, logged (path,
address and reason, never the key) and counted in `/metrics`; gRPC
(service.grpc_api) checks its `authorization` metadata the same way.
"""

from __future__ import annotations

import hmac
import logging
from typing import NoReturn

from flask import Flask, current_app, g, request

from models.errors import quoted
from models.settings import key_role
from service.errors import Forbidden, Unauthorized
from service.metrics import count_auth_failure

log = logging.getLogger(__name__)

# Health checks, the API's own description, and the dashboard's assets.
OPEN_PATHS = ("/healthz", "/readyz", "/v2/health/", "/static/", "/openapi.json", "/docs")
EXTENSION = "fitserve.keys"


class KeyRefused(Unauthorized):
    """A request without a valid key; `reason` (missing, malformed,
    unknown_key) is what the log line and the counter say."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Keys:
    """The configured keys and their roles."""

    def __init__(self, entries: list[str]) -> None:
        self._keys = [(role, key.encode()) for role, key in map(key_role, entries)]

    def role_of(self, token: str) -> str | None:
        """The role of `token`, or None when it is no key of ours."""
        presented = token.encode()
        role = None
        # compare_digest over every key: no early exit that times which one nearly matched.
        for candidate, key in self._keys:
            if hmac.compare_digest(presented, key):
                role = candidate
        return role

    def role_of_header(self, header: str) -> str:
        """The role of the key an Authorization value (`Bearer <key>`) carries,
        over HTTP or gRPC; KeyRefused when it carries none of ours."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            received = "no Authorization header" if not header else "a malformed header"
            raise KeyRefused(
                "missing" if not header else "malformed",
                "This route needs an API key: send 'Authorization: Bearer <key>'. "
                f"Received: {received}",
            )
        role = self.role_of(token)
        if role is None:
            raise KeyRefused("unknown_key", "The API key is not valid. Received: an unknown key")
        return role


def install_auth(app: Flask, api_keys: list[str]) -> None:
    app.extensions[EXTENSION] = Keys(api_keys)

    @app.before_request
    def _require_key() -> None:
        path = request.path
        if path == "/" or path.startswith(OPEN_PATHS):
            return
        keys: Keys = app.extensions[EXTENSION]
        try:
            role = keys.role_of_header(request.headers.get("Authorization", ""))
        except KeyRefused as refused:
            _log_refusal("unauthorized", refused.reason)
            raise
        g.key_role = role
        # A route no rule matches is let through: its 404 or 405 tells nothing.
        if role == "predict" and request.url_rule is not None:
            if not predict_may(request.method, path):
                _forbid(path)


def predict_may(method: str, path: str) -> bool:
    """Whether a `predict` key may make this request: model reads, predict,
    evaluate, and V2's metadata, ready and infer."""
    if method in ("GET", "HEAD"):
        # The prediction log holds every client's inputs: for full keys only.
        if path.startswith("/v1/models/") and path.count("/") == 4:
            if path.endswith("/predictions"):
                return False
        # `/v2` and `/v2/`: V2's server metadata (the protocol's document spells it `/v2/`).
        return path in ("/v1/models", "/v2", "/v2/") or path.startswith(
            ("/v1/models/", "/v2/models/")
        )
    if method == "POST":
        # Model and label names hold no ':', so the suffix is the verb.
        if path.startswith("/v1/models/"):
            return path.endswith((":predict", ":evaluate"))
        return path.startswith("/v2/models/") and path.endswith("/infer")
    return False


def presented_role() -> str | None:
    """The role of the key this request carries (None without a valid one),
    for open routes that say more to a caller with a key (`/readyz`)."""
    keys: Keys = current_app.extensions[EXTENSION]
    try:
        return keys.role_of_header(request.headers.get("Authorization", ""))
    except KeyRefused:
        return None


def _forbid(path: str) -> NoReturn:
    _log_refusal("forbidden", "forbidden")
    raise Forbidden(
        "This key may only predict, evaluate and read models (its role is 'predict'); "
        f"this route needs a key with every right. Received: {request.method} {quoted(path)}"
    )


def _log_refusal(status: str, reason: str) -> None:
    log_refusal(status, reason, request.method, request.path, request.remote_addr)


def log_refusal(status: str, reason: str, method: str, path: str, address: str | None) -> None:
    """A warning line (path, address, reason: never the key) and the counter."""
    count_auth_failure(reason)
    log.warning(
        "%s: %s %s from %s (%s)", status, method, path, address, reason,
        extra={"path": path, "remote_addr": address, "reason": reason},
    )  # fmt: skip
