"""Key roles (`predict:<key>`), refused keys at start, 401s logged and counted,
the dashboard's framing headers, and what `/readyz` tells a caller without a key."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from models.settings import Settings
from service.app import create_app
from tests.conftest import API_KEY

PREDICT_KEY = "predict-key-0123456789"


@pytest.fixture
def roles_app(settings: Settings) -> Flask:
    keys = [API_KEY, f"predict:{PREDICT_KEY}"]
    return create_app(settings.model_copy(update={"api_keys": keys, "preload_models": False}))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# Routes a predict key may use: it gets what a full key gets (here a 404 or a
# 200), never a 403.
PREDICT_MAY = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/nothing"),
    ("GET", "/v1/models/nothing/versions/1"),
    ("GET", "/v1/models/nothing/metadata"),
    ("POST", "/v1/models/nothing:predict"),
    ("POST", "/v1/models/nothing/versions/1:predict"),
    ("POST", "/v1/models/nothing:evaluate"),
    ("GET", "/v1/models/nothing/labels"),
    ("GET", "/v1/models/nothing/labels/stable"),
    ("POST", "/v1/models/nothing/labels/stable:predict"),
    ("GET", "/v2/models/nothing"),
    ("GET", "/v2/models/nothing/ready"),
    ("POST", "/v2/models/nothing/infer"),
    ("POST", "/v2/models/nothing/versions/1/infer"),
]
PREDICT_MAY_NOT = [
    ("POST", "/v1/models/nothing:batchPredict"),
    ("DELETE", "/v1/models/nothing/versions/1"),
    ("PUT", "/v1/models/nothing/labels/stable"),
    ("DELETE", "/v1/models/nothing/labels/stable"),
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", f"/v1/jobs/{'0' * 32}"),
    ("GET", f"/v1/jobs/{'0' * 32}/events"),
    ("POST", f"/v1/jobs/{'0' * 32}:cancel"),
    ("GET", "/v1/datasets"),
    ("POST", "/v1/datasets"),
    ("DELETE", f"/v1/datasets/{'0' * 64}"),
    ("GET", "/v1/workers"),
    ("GET", "/metrics"),
]


def test_a_predict_key_may_only_predict_evaluate_and_read_models(roles_app: Flask) -> None:
    client = roles_app.test_client()
    for method, path in PREDICT_MAY:
        full = client.open(path, method=method, headers=bearer(API_KEY), json={"instances": [[1]]})
        limited = client.open(path, method=method, headers=bearer(PREDICT_KEY),
                              json={"instances": [[1]]})  # fmt: skip
        assert limited.status_code == full.status_code != 403, (method, path, limited.json)
    for method, path in PREDICT_MAY_NOT:
        full = client.open(path, method=method, headers=bearer(API_KEY), json={})
        assert full.status_code != 403, (method, path)
        limited = client.open(path, method=method, headers=bearer(PREDICT_KEY), json={})
        assert limited.status_code == 403, (method, path, limited.status_code)
        error = limited.json["error"]
        assert error["code"] == "forbidden"
        assert "only predict, evaluate and read models" in error["message"]
        assert path in error["message"] and PREDICT_KEY not in error["message"]
    # A route that does not exist is a 404 for it too: a 403 would tell it exists.
    assert client.get("/v1/nothing", headers=bearer(PREDICT_KEY)).status_code == 404


def test_a_predict_key_is_not_a_key_by_its_prefixed_spelling(roles_app: Flask) -> None:
    client = roles_app.test_client()
    assert client.get("/v1/models", headers=bearer(f"predict:{PREDICT_KEY}")).status_code == 401


@pytest.mark.parametrize(
    ("keys", "rule"),
    [
        ("short-key", "at least 16 characters"),
        (f"{API_KEY},predict:short", "at least 16 characters"),
        (f"predcit:{PREDICT_KEY}", "role"),
        (f"{API_KEY},predict:{API_KEY}", "repeats a key"),
    ],
)
def test_bad_keys_are_refused_at_start_without_printing_them(
    monkeypatch: pytest.MonkeyPatch, keys: str, rule: str
) -> None:
    monkeypatch.setenv("FITSERVE_API_KEYS", keys)
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = str(caught.value)
    assert rule in text
    for secret in ("short-key", "short", PREDICT_KEY, API_KEY):
        assert secret not in text.replace("shorter", ""), text


def auth_failures(client: FlaskClient) -> dict[str, float]:
    text = client.get("/metrics", headers=bearer(API_KEY)).get_data(as_text=True)
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fitserve_auth_failures_total"
    }


def test_refused_keys_are_logged_and_counted_never_the_key(
    roles_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = roles_app.test_client()
    before = auth_failures(client)
    with caplog.at_level(logging.WARNING, logger="service.auth"):
        client.get("/v1/datasets")
        client.get("/v1/datasets", headers={"Authorization": "Basic abc"})
        client.get("/v1/jobs", headers=bearer("a-wrong-key-0123456789"))
        client.get("/v1/jobs", headers=bearer(PREDICT_KEY))
    after = auth_failures(client)
    for reason in ("missing", "malformed", "unknown_key", "forbidden"):
        assert after.get(reason, 0) - before.get(reason, 0) == 1, reason
    lines = [record for record in caplog.records if record.name == "service.auth"]
    assert [record.reason for record in lines] == [  # type: ignore[attr-defined]
        "missing", "malformed", "unknown_key", "forbidden"
    ]  # fmt: skip
    for record in lines:
        assert record.levelno == logging.WARNING
        assert record.remote_addr == "127.0.0.1"  # type: ignore[attr-defined]
        assert record.getMessage().split()[2] in ("/v1/datasets", "/v1/jobs")
    assert "a-wrong-key" not in caplog.text and PREDICT_KEY not in caplog.text


def test_the_dashboard_cannot_be_framed_and_nothing_is_sniffed(client: FlaskClient) -> None:
    with client.get("/") as page:  # closed: it streams a file
        assert page.status_code == 200
        assert page.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/healthz", "/v1/jobs", "/nope", "/static/dashboard.js"):
        with client.get(path) as response:
            assert response.headers["X-Content-Type-Options"] == "nosniff", path


def test_readyz_tells_paths_and_hosts_only_to_a_caller_with_a_key(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0",
                                         "preload_models": False})  # fmt: skip
    app = create_app(broken)
    store = Path(settings.data_dir)
    shutil.rmtree(store, ignore_errors=True)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("a file where the store's folder was")
    client = app.test_client()

    anonymous = client.get("/readyz")
    assert anonymous.status_code == 503
    assert anonymous.json["reasons"] == [
        "Redis (the job store and queue) unreachable", "model store not writable"
    ]  # fmt: skip
    for header in ({"Authorization": "Bearer a-wrong-key-0123456789"}, {"Authorization": "x"}):
        assert client.get("/readyz", headers=header).json == anonymous.json

    detailed = client.get("/readyz", headers=bearer(API_KEY)).json["reasons"]
    assert "127.0.0.1:1" in detailed[0] or ":1." in detailed[0], detailed
    assert str(store) in detailed[1], detailed
