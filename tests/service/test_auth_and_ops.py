from __future__ import annotations

import pytest
from flask.testing import FlaskClient


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_routes_need_no_key(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json["status"] in ("ok", "ready")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Authorization header"),
        ({"Authorization": "Basic abc"}, "malformed"),
        ({"Authorization": "Bearer wrong"}, "unknown key"),
    ],
)
def test_api_routes_need_a_valid_key(
    client: FlaskClient, headers: dict[str, str], reason: str
) -> None:
    response = client.get("/v1/datasets", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert reason in response.json["error"]["message"]


def test_a_valid_key_passes(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/v1/datasets", headers=auth).status_code == 200


def test_unknown_route_is_a_json_404(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get("/v1/nothing-here", headers=auth)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_readyz_reports_an_unreachable_broker(settings, auth) -> None:  # type: ignore[no-untyped-def]
    from service.app import create_app

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    response = create_app(broken).test_client().get("/readyz")
    assert response.status_code == 503
    assert "Redis (the job store and queue) unreachable" in response.json["reasons"][0]
