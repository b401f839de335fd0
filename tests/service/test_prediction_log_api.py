"""The prediction log through the API: sampled predictions on every protocol
and body read back with GET /v1/models/{name}/predictions, paged with `next`;
nothing written when the sample is 0; bad queries answered with where."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from models.settings import PredictionLog, Settings
from models.storage.blobs import open_blobs
from tests.conftest import API_KEY
from tests.service.conftest import PETS_X

X = PETS_X
PREDICT_KEY = "predict-key-0123456789abcdef"


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Every prediction logged (or the sample a test names), and a predict key."""
    sample = getattr(request, "param", 1.0)
    return settings.model_copy(update={
        "prediction_log": PredictionLog(sample=sample),
        "api_keys": [API_KEY, f"predict:{PREDICT_KEY}"],
    })  # fmt: skip


def predict_every_way(client: FlaskClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    """Five predictions (v1 JSON, CSV and NPY, v2 JSON; one with the predict
    key); what each should have logged."""
    by_predict_key = {"Authorization": f"Bearer {PREDICT_KEY}"}
    answers = [client.post("/v1/models/pets:predict", json={"instances": X[:2].tolist()},
                           headers=auth)]  # fmt: skip
    csv_body = "a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in X[2:5])
    answers.append(client.post("/v1/models/pets/versions/1:predict", data=csv_body,
                               headers={**auth, "Content-Type": "text/csv"}))  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, X[5:6])
    answers.append(client.post("/v1/models/pets:predict", data=buffer.getvalue(),
                               headers={**auth, "Content-Type": "application/x-npy"}))  # fmt: skip
    tensor = {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X[6:8].ravel().tolist()}
    answers.append(client.post("/v2/models/pets/infer", json={"inputs": [tensor]},
                               headers=auth))  # fmt: skip
    answers.append(client.post("/v1/models/pets:predict", json={"instances": X[8:9].tolist()},
                               headers=by_predict_key))  # fmt: skip
    assert [answer.status_code for answer in answers] == [200] * 5
    v1_json = {"protocol": "v1", "role": "full"}
    return [
        {**v1_json, "inputs": X[:2], "outputs": answers[0].json["predictions"],
         "labels": answers[0].json["labels"]},
        {**v1_json, "inputs": X[2:5]},
        {**v1_json, "inputs": X[5:6]},
        {"protocol": "v2", "role": "full", "inputs": X[6:8],
         "outputs": np.reshape(answers[3].json["outputs"][0]["data"], (2, 2)),
         "labels": answers[3].json["outputs"][1]["data"]},
        {"protocol": "v1", "role": "predict", "inputs": X[8:9],
         "outputs": answers[4].json["predictions"], "labels": answers[4].json["labels"]},
    ]  # fmt: skip


def test_predictions_on_every_protocol_are_logged_and_read_back(
    client: FlaskClient, auth: dict[str, str], pets: str
) -> None:
    expected = predict_every_way(client, auth)

    answer = client.get("/v1/models/pets/predictions", headers=auth)

    assert answer.status_code == 200, answer.json
    assert API_KEY not in answer.get_data(as_text=True)
    assert PREDICT_KEY not in answer.get_data(as_text=True)
    records = answer.json["records"]
    assert answer.json["next"] is None
    assert len(records) == len(expected)
    assert [record["time"] for record in records] == sorted(record["time"] for record in records)
    for record, wanted in zip(records, expected, strict=True):
        assert record["model"] == "pets" and record["version"] == 1
        assert record["protocol"] == wanted["protocol"] and record["role"] == wanted["role"]
        assert record["rows"] == len(wanted["inputs"])
        np.testing.assert_array_equal(np.array(record["inputs"], np.float32), wanted["inputs"])
        assert np.shape(record["outputs"]) == (len(wanted["inputs"]), 2)
        assert set(record["labels"]) <= {"cat", "dog"}
        assert isinstance(record["latency_ms"], float) and record["latency_ms"] > 0
        if "outputs" in wanted:
            np.testing.assert_allclose(record["outputs"], wanted["outputs"], rtol=1e-6)
            assert record["labels"] == wanted["labels"]
        assert record["time"].endswith("Z") and len(record["time"]) == 24


def test_pages_follow_next_and_since(client: FlaskClient, auth: dict[str, str], pets: str) -> None:
    predict_every_way(client, auth)
    everything = client.get("/v1/models/pets/predictions?limit=1000", headers=auth).json
    seen = []
    page = client.get("/v1/models/pets/predictions?limit=2", headers=auth).json
    while True:
        assert len(page["records"]) <= 2
        seen += page["records"]
        if page["next"] is None:
            break
        page = client.get("/v1/models/pets/predictions", headers=auth,
                          query_string={"since": page["next"], "limit": 2}).json  # fmt: skip
    assert seen == everything["records"] and len(seen) == 5

    # `since` is inclusive, to the millisecond: from the third record's time.
    third = everything["records"][2]["time"]
    later = client.get("/v1/models/pets/predictions", headers=auth,
                       query_string={"since": third}).json  # fmt: skip
    assert later["records"][0]["time"] == third
    assert len(later["records"]) >= 3
    assert client.get("/v1/models/pets/predictions", headers=auth,
                      query_string={"since": "2299-01-01T00:00:00Z"}).json == {
        "records": [], "next": None
    }  # fmt: skip


def test_a_predict_key_may_not_read_the_log(client: FlaskClient) -> None:
    answer = client.get("/v1/models/pets/predictions",
                        headers={"Authorization": f"Bearer {PREDICT_KEY}"})  # fmt: skip
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("query", "where"),
    [({"since": "yesterday"}, "since"), ({"since": "2026-11-30T10:00:00"}, "since"),
     ({"since": "2026-11-30T10:00:00Z~nothing~1"}, "since"), ({"limit": "0"}, "limit"),
     ({"limit": "1001"}, "limit")],
)  # fmt: skip
def test_a_bad_query_says_where(
    client: FlaskClient, auth: dict[str, str], query: dict[str, str], where: str
) -> None:
    answer = client.get("/v1/models/pets/predictions", headers=auth, query_string=query)
    assert answer.status_code == 422
    assert answer.json["error"]["details"][0]["loc"] == ["query", where]
    assert "Received" in answer.json["error"]["message"]


@pytest.mark.parametrize("settings", [0.0], indirect=True)
def test_nothing_is_logged_when_the_sample_is_zero(
    client: FlaskClient, auth: dict[str, str], pets: str, settings: Settings
) -> None:
    predict_every_way(client, auth)

    answer = client.get("/v1/models/pets/predictions", headers=auth)

    assert answer.json == {"records": [], "next": None}
    assert list(open_blobs(settings).keys("predictions/")) == []
