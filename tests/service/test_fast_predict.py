"""service.fast_predict answers the plainest `:predict` without Flask: the
same bytes and headers as Flask's route, the same metrics, access log line and
prediction log record, and every other request (errors above all) left to
Flask, body intact."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app
from service.fast_predict import LATEST_ROUTE, MOST_BYTES, VERSION_ROUTE
from tests.conftest import API_KEY

X = np.random.default_rng(3).normal(size=(30, 3)).astype(np.float32)
LABELS = np.array(["low", "high"])[(X[:, 0] > 0).astype(int)]
CLASSIFIER = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"},
               {"type": "dense", "units": 2, "activation": "softmax"}],
    "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 8},
    "seed": 1,
}  # fmt: skip
REGRESSION = {
    **CLASSIFIER,
    "layers": [{"type": "dense", "units": 4, "activation": "relu"},
               {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
}  # fmt: skip
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PREDICT_KEY = "predict-only-key-for-the-lane"


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings.model_copy(update={"api_keys": [API_KEY, f"predict:{PREDICT_KEY}"]}))


@pytest.fixture
def models(publish: Callable[..., dict[str, Any]]) -> None:
    classes = json.dumps({"x": X.tolist(), "y": LABELS.tolist()}).encode()
    publish("kinds", CLASSIFIER, classes, "application/json")
    publish("kinds", CLASSIFIER, classes, "application/json")
    values = json.dumps({"x": X.tolist(), "y": X[:, 0].tolist()}).encode()
    publish("amounts", REGRESSION, values, "application/json")


class Lane:
    """The app's fast lane, counting the requests it answered."""

    def __init__(self, app: Flask) -> None:
        self.inner = app.fast_lane  # type: ignore[attr-defined]
        self.answered = 0
        app.fast_lane = self  # type: ignore[attr-defined]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes] | None:
        answer = self.inner(environ, start_response)
        self.answered += answer is not None
        return answer


def answer_of(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.headers.items()), response.data


def both_ways(app: Flask, path: str, **request: Any) -> tuple[Any, Any, int]:
    """(the answer with the lane, the answer from Flask alone, requests the lane answered)."""
    lane = Lane(app)
    client = app.test_client()
    fast = answer_of(client.post(path, **request))
    answered = lane.answered
    app.fast_lane = None  # type: ignore[attr-defined]
    slow = answer_of(client.post(path, **request))
    app.fast_lane = lane.inner  # type: ignore[attr-defined]
    return fast, slow, answered


ROWS = X[:4].tolist()
ANSWERED = {
    "latest, rows": ("/v1/models/kinds:predict", {"instances": ROWS}),
    "a version": ("/v1/models/kinds/versions/1:predict", {"instances": ROWS[:1]}),
    "columnar": ("/v1/models/kinds:predict", {"inputs": ROWS}),
    "regression": ("/v1/models/amounts:predict", {"instances": ROWS}),
}


@pytest.mark.usefixtures("models")
def test_the_lane_answers_as_flask_does(app: Flask) -> None:
    for case, (path, body) in ANSWERED.items():
        for key in (API_KEY, PREDICT_KEY):  # every role may predict
            headers = {"Authorization": f"Bearer {key}"}
            fast, slow, answered = both_ways(app, path, json=body, headers=headers)
            assert fast[0] == 200, (case, fast[2])
            assert fast == slow, case
            assert answered == 1, case


LEFT_TO_FLASK = {
    "no key": ("/v1/models/kinds:predict", {"json": {"instances": ROWS}}),
    "an unknown key": ("/v1/models/kinds:predict",
                       {"json": {"instances": ROWS}, "headers": {"Authorization": "Bearer x"}}),
    "an unknown model": ("/v1/models/nothing:predict", {"json": {"instances": ROWS}}),
    "an unknown version": ("/v1/models/kinds/versions/9:predict", {"json": {"instances": ROWS}}),
    "a leading zero": ("/v1/models/kinds/versions/01:predict", {"json": {"instances": ROWS}}),
    "a label": ("/v1/models/kinds/labels/stable:predict", {"json": {"instances": ROWS}}),
    "malformed JSON": ("/v1/models/kinds:predict",
                       {"data": b'{"instances": [[1, 2', "content_type": "application/json"}),
    "a wrong shape": ("/v1/models/kinds:predict", {"json": {"instances": [[1.0, 2.0]]}}),
    "no instances": ("/v1/models/kinds:predict", {"json": {"rows": ROWS}}),
    "CSV asked for": ("/v1/models/kinds:predict",
                      {"json": {"instances": ROWS}, "headers": {"Accept": "text/csv"}}),
    "a CSV body": ("/v1/models/kinds:predict",
                   {"data": b"0.1,0.2,0.3\n", "content_type": "text/csv"}),
    "a charset": ("/v1/models/kinds:predict", {"data": json.dumps({"instances": ROWS}),
                  "content_type": "application/json; charset=utf-8"}),
    "a query": ("/v1/models/kinds:predict?x=1", {"json": {"instances": ROWS}}),
    "gzip": ("/v1/models/kinds:predict", {
        "data": gzip.compress(json.dumps({"instances": ROWS}).encode()),
        "content_type": "application/json", "headers": {"Content-Encoding": "gzip"}}),
    "a large body": ("/v1/models/kinds:predict",
                     {"json": {"instances": X.tolist() * (MOST_BYTES // 1500)}}),
}  # fmt: skip


SUCCEED = ("a leading zero", "CSV asked for", "a CSV body", "a charset", "a query", "gzip",
           "a large body")  # fmt: skip


@pytest.mark.usefixtures("models")
def test_everything_else_is_flasks_with_its_body_intact(app: Flask) -> None:
    for case, (path, request) in LEFT_TO_FLASK.items():
        headers = {} if case == "no key" else {**AUTH, **request.get("headers", {})}
        fast, slow, answered = both_ways(app, path, **{**request, "headers": headers})
        assert answered == 0, case
        # The same answer: Flask read the body the lane put back (a malformed
        # body's message quotes where it broke off; a CSV answer has its rows).
        assert fast == slow, case
        if case in SUCCEED:
            assert fast[0] == 200, (case, fast[2][:300])
        else:
            assert fast[0] >= 400, case


def test_the_lanes_routes_are_the_ones_flask_matches(app: Flask) -> None:
    adapter = app.url_map.bind("localhost")
    for path, route in (("/v1/models/kinds:predict", LATEST_ROUTE),
                        ("/v1/models/kinds/versions/2:predict", VERSION_ROUTE)):  # fmt: skip
        rule, _ = adapter.match(path, method="POST", return_rule=True)
        assert rule.rule == route


def metric(client: FlaskClient, series: str) -> float:
    """A series' value in /metrics (the registry is the test process's: compare deltas)."""
    for line in client.get("/metrics", headers=AUTH).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.usefixtures("models")
def test_the_lane_counts_logs_and_records_as_flask_does(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    predicted = 'fitserve_predictions_total{model="kinds"}'
    series = f'method="POST",route="{VERSION_ROUTE}",status="200"'
    requests = f"fitserve_http_request_duration_seconds_count{{{series}}}"
    before = metric(client, predicted), metric(client, requests)
    lane = Lane(app)
    parts = app.extensions["fitserve"]
    parts.prediction_log.sample = 1.0
    offered: list[tuple[Any, ...]] = []
    parts.prediction_log.offer = lambda *record: offered.append(record)
    with caplog.at_level(logging.INFO, logger="fitserve.access"):
        answer = client.post("/v1/models/kinds/versions/1:predict", json={"instances": ROWS},
                             headers={"Authorization": f"Bearer {PREDICT_KEY}"})  # fmt: skip
    assert answer.status_code == 200 and lane.answered == 1
    (line,) = [record for record in caplog.records if record.name == "fitserve.access"]
    assert line.getMessage() == "POST /v1/models/kinds/versions/1:predict 200"
    assert line.route == VERSION_ROUTE and line.status == 200  # type: ignore[attr-defined]
    assert line.duration_ms > 0  # type: ignore[attr-defined]
    (record,) = offered
    name, version, x, outputs, labels, latency_ms, role, protocol = record
    assert (name, version, role, protocol) == ("kinds", 1, "predict", "v1")
    np.testing.assert_array_equal(x, np.asarray(ROWS, np.float32))
    np.testing.assert_allclose(outputs, answer.json["predictions"], rtol=1e-6)
    assert labels == answer.json["labels"] and latency_ms > 0
    after = metric(client, predicted), metric(client, requests)
    assert (after[0] - before[0], after[1] - before[1]) == (len(ROWS), 1)
