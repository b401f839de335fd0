"""The Open Inference Protocol (KServe V2): every documented request shape."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.service.conftest import PETS_X

X = PETS_X


def infer_body(rows: np.ndarray, **extra: Any) -> dict[str, Any]:
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP32",
              "data": rows.reshape(-1).tolist()}  # fmt: skip
    return {"inputs": [tensor], **extra}


def test_health_needs_no_key(client: FlaskClient) -> None:
    assert client.get("/v2/health/live").json == {"live": True}
    assert client.get("/v2/health/ready").json == {"ready": True}


def test_model_ready_and_metadata(client: FlaskClient, auth: dict[str, str], pets: str) -> None:
    # Ready once loaded and warm (tests/service/test_warm_before_ready.py): an
    # inference waits for the load that the publish started.
    infer = client.post("/v2/models/pets/infer", json=infer_body(X[:1]), headers=auth)
    assert infer.status_code == 200, infer.json
    assert client.get("/v2/models/pets/ready", headers=auth).json["ready"] is True
    assert client.get("/v2/models/pets/versions/1/ready", headers=auth).status_code == 200
    assert client.get("/v2/models/nothing/ready", headers=auth).status_code == 404
    metadata = client.get("/v2/models/pets", headers=auth).json
    assert metadata["versions"] == ["1"] and metadata["platform"] == "keras"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [tensor["name"] for tensor in metadata["outputs"]] == ["output_0", "label"]
    assert metadata["outputs"][1]["datatype"] == "BYTES"


@pytest.mark.parametrize("nested", [False, True])
def test_infer_matches_the_tf_serving_route(
    client: FlaskClient, auth: dict[str, str], pets: str, nested: bool
) -> None:
    body = infer_body(X[:6], id="request-7")
    if nested:
        body["inputs"][0]["data"] = X[:6].tolist()
    response = client.post("/v2/models/pets/infer", json=body, headers=auth)
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["model_name"] == "pets" and answer["model_version"] == "1"
    assert answer["id"] == "request-7"
    output, label = answer["outputs"]
    assert output["name"] == "output_0" and output["shape"] == [6, 2]
    tf_serving = client.post("/v1/models/pets:predict", json={"instances": X[:6].tolist()},
                             headers=auth).json  # fmt: skip
    np.testing.assert_allclose(np.reshape(output["data"], (6, 2)), tf_serving["predictions"],
                               rtol=1e-6)  # fmt: skip
    assert label == {"name": "label", "datatype": "BYTES", "shape": [6],
                     "data": tf_serving["labels"]}  # fmt: skip


def test_infer_returns_only_the_requested_outputs(
    client: FlaskClient, auth: dict[str, str], pets: str
) -> None:
    body = infer_body(X[:2], outputs=[{"name": "label"}])
    response = client.post("/v2/models/pets/versions/1/infer", json=body, headers=auth)
    assert [tensor["name"] for tensor in response.json["outputs"]] == ["label"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda body: body["inputs"][0].update(shape=[2, 5]), ["inputs", 0, "shape"]),
        (lambda body: body["inputs"][0].update(datatype="BYTES"), ["inputs", 0, "datatype"]),
        (lambda body: body["inputs"][0].update(data=[1.0, 2.0]), ["inputs", 0, "data"]),
        (lambda body: body["inputs"].append(body["inputs"][0]), ["inputs"]),
        (lambda body: body.update(outputs=[{"name": "nope"}]), ["outputs", 0, "name"]),
    ],
)
def test_bad_infer_requests_are_400s_that_say_where(
    client: FlaskClient, auth: dict[str, str], pets: str, change: Any, loc: list[Any]
) -> None:
    body = infer_body(X[:2])
    change(body)
    response = client.post("/v2/models/pets/infer", json=body, headers=auth)
    assert response.status_code == 400
    # The protocol's error shape: the message is `error`, beside `code` and `details`.
    assert response.json["code"] == "invalid_sample"
    assert response.json["details"][0]["loc"] == loc
