"""The Open Inference Protocol over gRPC spoken by clients nobody here
wrote: Triton's `tritonclient.grpc` (raw FP32, as it sends) and KServe's
`InferenceGRPCClient` (typed and raw), each in a child process of its own
(tests.oip_grpc), against the app's gRPC server over a trained model. Their
answers equal HTTP's /v2, and their errors carry HTTP's messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from models.settings import PredictionLog, Settings
from tests import foreign_grpc_clients as clients
from tests.conftest import API_KEY
from tests.foreign_grpc_clients import Refusal
from tests.oip_grpc import ClientProcess
from tests.service.conftest import PETS_LABELS, PETS_SPEC, PETS_X

X = PETS_X
ROWS = X[:5]
PREDICT_KEY = "predict-key-0123456789abcdef"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A predict key beside the full one, and every prediction logged."""
    return settings.model_copy(update={
        "api_keys": [API_KEY, f"predict:{PREDICT_KEY}"],
        "prediction_log": PredictionLog(sample=1.0),
    })  # fmt: skip


@pytest.fixture(scope="module")
def triton() -> Iterator[ClientProcess]:
    child = ClientProcess()
    yield child
    child.close()


@pytest.fixture(scope="module")
def kserve() -> Iterator[ClientProcess]:
    child = ClientProcess()
    yield child
    child.close()


def http_infer(client: FlaskClient, auth: dict[str, str], rows: np.ndarray,
               path: str = "/v2/models/pets/infer") -> Any:  # fmt: skip
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.reshape(-1).tolist()}]}  # fmt: skip
    return client.post(path, json=body, headers=auth)


def strings(values: Any) -> list[str]:
    return [value.decode() for value in values]


def test_tritonclient_over_every_rpc(
    client: FlaskClient, auth: dict[str, str], pets: str, grpc_address: str, triton: ClientProcess
) -> None:
    expected = http_infer(client, auth, ROWS).json["outputs"]  # and the model is warm
    health = triton.run(clients.triton_health, grpc_address, API_KEY, "pets")
    assert [health["live"], health["ready"], health["model_ready"]] == [True, True, True]
    metadata = client.get("/v2/models/pets", headers=auth).json
    for tensor in metadata["inputs"] + metadata["outputs"]:
        tensor["shape"] = [str(size) for size in tensor["shape"]]  # int64 in protobuf's JSON
    assert health["metadata"] == metadata
    assert health["server"] == client.get("/v2", headers=auth).json

    answer = triton.run(clients.triton_infer, grpc_address, API_KEY, "pets", ROWS)

    assert answer["raw"] is True  # raw in, raw out, as Triton answers its client
    assert answer["id"] == "req-7" and answer["model_version"] == "1"
    np.testing.assert_allclose(answer["outputs"]["output_0"].reshape(-1), expected[0]["data"],
                               rtol=1e-6)  # fmt: skip
    assert strings(answer["outputs"]["label"]) == expected[1]["data"]
    only = triton.run(clients.triton_infer, grpc_address, API_KEY, "pets", ROWS, "", ["label"])
    assert list(only["outputs"]) == ["label"]


def test_tritonclient_with_a_label_for_a_version(
    client: FlaskClient, auth: dict[str, str], pets: str, grpc_address: str,
    triton: ClientProcess, publish: Callable[..., dict[str, Any]],
) -> None:  # fmt: skip
    body = json.dumps({"x": X.tolist(), "y": PETS_LABELS[::-1].tolist()}).encode()
    publish("pets", PETS_SPEC, body, "application/json")  # version 2
    assert client.put("/v1/models/pets/labels/stable", json={"version": 1},
                      headers=auth).status_code == 200  # fmt: skip
    stable = http_infer(client, auth, ROWS, "/v2/models/pets/versions/stable/infer").json

    answers = {version: triton.run(clients.triton_infer, grpc_address, API_KEY, "pets", ROWS,
                                   version)
               for version in ("stable", "2", "")}  # fmt: skip

    assert {version: answer["model_version"] for version, answer in answers.items()} == {
        "stable": "1", "2": "2", "": "2"}  # fmt: skip
    assert strings(answers["stable"]["outputs"]["label"]) == stable["outputs"][1]["data"]
    health = triton.run(clients.triton_health, grpc_address, API_KEY, "pets", "stable")
    assert health["model_ready"] is True and health["metadata"]["versions"] == ["1", "2"]
    missing = triton.run(clients.triton_infer, grpc_address, API_KEY, "pets", ROWS, "beta")
    http = http_infer(client, auth, ROWS, "/v2/models/pets/versions/beta/infer")
    assert missing == Refusal("NOT_FOUND", http.json["error"])


def test_tritonclient_keys_and_a_wrong_shape(
    client: FlaskClient, auth: dict[str, str], pets: str, grpc_address: str, triton: ClientProcess
) -> None:
    no_key = triton.run(clients.triton_infer, grpc_address, None, "pets", ROWS)
    assert no_key == Refusal("UNAUTHENTICATED", http_infer(client, {}, ROWS).json["error"])
    wrong_key = triton.run(
        clients.triton_infer, grpc_address, "a-key-nobody-was-given", "pets", ROWS
    )
    assert wrong_key == Refusal("UNAUTHENTICATED",
                                "The API key is not valid. Received: an unknown key")  # fmt: skip
    by_predict_key = triton.run(clients.triton_infer, grpc_address, PREDICT_KEY, "pets", ROWS)
    assert by_predict_key["model_version"] == "1"

    wrong_shape = triton.run(clients.triton_infer, grpc_address, API_KEY, "pets", ROWS[:, :3])

    over_http = http_infer(client, auth, ROWS[:, :3])
    assert over_http.status_code == 400
    assert wrong_shape == Refusal("INVALID_ARGUMENT", over_http.json["error"])
    assert "inputs[0].shape must be [rows, 4]" in wrong_shape.message


def test_grpc_predictions_are_counted_and_logged_with_their_role(
    client: FlaskClient, auth: dict[str, str], pets: str, grpc_address: str, triton: ClientProcess
) -> None:
    answer = triton.run(clients.triton_infer, grpc_address, PREDICT_KEY, "pets", ROWS)

    records = client.get("/v1/models/pets/predictions", headers=auth).json["records"]
    (record,) = [record for record in records if record["protocol"] == "grpc"]
    assert record["role"] == "predict" and record["rows"] == len(ROWS)
    np.testing.assert_allclose(record["outputs"], answer["outputs"]["output_0"], rtol=1e-6)
    assert record["labels"] == strings(answer["outputs"]["label"])
    metrics = client.get("/metrics", headers=auth).get_data(as_text=True)
    counted = [line for line in metrics.splitlines()
               if line.startswith('fitserve_predictions_total{model="pets"}')]  # fmt: skip
    assert counted and float(counted[0].split()[-1]) >= len(ROWS)


def test_kserve_client_typed_and_raw(
    client: FlaskClient, auth: dict[str, str], pets: str, grpc_address: str, kserve: ClientProcess
) -> None:
    expected = http_infer(client, auth, ROWS).json["outputs"]

    answers = kserve.run(clients.kserve_session, grpc_address, API_KEY, "pets", ROWS)

    assert [answers["live"], answers["ready"], answers["model_ready"]] == [True, True, True]
    for kind in ("typed", "raw"):
        answer = answers[kind]
        assert answer["id"] == f"kserve-{kind}" and answer["model_version"] == "1"
        np.testing.assert_allclose(answer["outputs"]["output_0"].reshape(-1),
                                   expected[0]["data"], rtol=1e-6)  # fmt: skip
        labels = [str(label, "utf-8") if isinstance(label, bytes) else label
                  for label in answer["outputs"]["label"]]  # fmt: skip
        assert labels == expected[1]["data"], kind
    assert answers["no_key"] == Refusal(
        "UNAUTHENTICATED", http_infer(client, {}, ROWS).json["error"]
    )
