"""The Open Inference Protocol spoken to clients nobody here wrote: Triton's
`tritonclient.http` and KServe's `InferenceRESTClient`, against the API under
granian, each over every /v2 route, JSON and binary tensors; their outputs
equal `:predict`'s, and their exceptions carry the server's message. And
`tritonclient.grpc` (in a child process: tests.oip_grpc) against the gRPC
server that `fitserve-api` starts in its worker process beside HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import httpx
import kserve
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests import foreign_grpc_clients
from tests.conftest import API_KEY
from tests.e2e.conftest import Live
from tests.oip_grpc import ClientProcess


def auth() -> dict[str, str]:
    # A new dict for each call: both clients add their own headers to the one
    # they are given (Inference-Header-Content-Length, content-type).
    return {"Authorization": f"Bearer {API_KEY}"}


HEADER = "inference-header-content-length"  # as httpx gives response headers
MODEL = "oip-clients"
X = np.random.default_rng(21).normal(size=(80, 4)).astype(np.float32)
LABELS = np.array(["north", "south", "west"])[np.argmax(X[:, :3], axis=1)]
SPEC = {
    "input_shape": [4],
    "layers": [{"type": "dense", "units": 8, "activation": "relu"},
               {"type": "dense", "units": 3, "activation": "softmax"}],
    "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 2, "batch_size": 16},
    "seed": 6,
}  # fmt: skip
ROWS = X[:7]


@pytest.fixture(scope="module")
def served(live: Live) -> dict[str, Any]:
    """The trained model's `:predict` answer for ROWS, once it is ready."""
    dataset = live.http.post(live.url("/v1/datasets"),
                             json={"x": X.tolist(), "y": LABELS.tolist()})  # fmt: skip
    assert dataset.status_code in (200, 201), dataset.text
    job_request = {"model": MODEL, "spec": SPEC, "dataset": dataset.json()["id"]}
    job = live.http.post(live.url("/v1/jobs"), json=job_request)
    assert job.status_code == 202, job.text
    assert live.wait_for_job(job.json()["id"])["state"] == "succeeded"
    # Asking whether a version is ready starts its load and warm-up: ask until it is.
    deadline = time.monotonic() + 120
    while live.http.get(live.url(f"/v2/models/{MODEL}/ready")).status_code != 200:
        assert time.monotonic() < deadline, "the model never became ready"
        time.sleep(0.1)
    answer = live.http.post(live.url(f"/v1/models/{MODEL}:predict"),
                            json={"instances": ROWS.tolist()})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture
def client(live: Live) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(urlsplit(live.base_url).netloc)
    yield client
    client.close()


def labels_of(values: Any) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in values]


def test_tritonclient_over_every_route(
    client: triton.InferenceServerClient, served: dict[str, Any]
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata(headers=auth())
    assert metadata["name"] == "fitserve" and metadata["version"] == version("fitserve")
    assert "binary_tensor_data" in metadata["extensions"]
    assert client.is_model_ready(MODEL, headers=auth())
    assert client.is_model_ready(MODEL, "1", headers=auth())
    assert not client.is_model_ready("no-such-model", headers=auth())
    for model_version in ("", "1"):
        model = client.get_model_metadata(MODEL, model_version, headers=auth())
        assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert [output["name"] for output in model["outputs"]] == ["output_0", "label"]

    for binary, model_version in ((True, ""), (False, ""), (True, "1")):
        tensor = triton.InferInput("x", list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS, binary_data=binary)
        outputs = [triton.InferRequestedOutput(name, binary_data=binary)
                   for name in ("output_0", "label")]  # fmt: skip
        result = client.infer(MODEL, [tensor], model_version, outputs=outputs, headers=auth())
        answer = result.get_response()
        sizes = [
            output.get("parameters", {}).get("binary_data_size") for output in answer["outputs"]
        ]
        assert all(sizes) if binary else not any(sizes), answer
        np.testing.assert_allclose(result.as_numpy("output_0"), served["predictions"],
                                   rtol=1e-6, atol=1e-7)  # fmt: skip
        assert labels_of(result.as_numpy("label")) == served["labels"]
    # No outputs named: tritonclient asks for every output in binary.
    result = client.infer(MODEL, [tensor], headers=auth(), request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_allclose(result.as_numpy("output_0"), served["predictions"], rtol=1e-6)
    for algorithm in ("gzip", "deflate"):  # its request compression (answers come plain)
        result = client.infer(MODEL, [tensor], headers=auth(), outputs=outputs,
                              request_compression_algorithm=algorithm)  # fmt: skip
        np.testing.assert_allclose(result.as_numpy("output_0"), served["predictions"], rtol=1e-6)


def test_tritonclient_prints_the_servers_message(
    client: triton.InferenceServerClient, served: dict[str, Any]
) -> None:
    tensor = triton.InferInput("x", [2, 5], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 5), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, [tensor], headers=auth())
    assert caught.value.status() == "400"
    assert "inputs[0].shape must be [rows, 4]" in str(caught.value)
    with pytest.raises(InferenceServerException, match="No model named 'nothing-here' has"):
        client.get_model_metadata("nothing-here", headers=auth())
    with pytest.raises(InferenceServerException, match="needs an API key"):
        client.get_server_metadata()


def kserve_request(binary: bool) -> kserve.InferRequest:
    tensor = kserve.InferInput("x", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=binary)
    outputs = [kserve.protocol.infer_type.RequestedOutput(name, {"binary_data": binary})
               for name in ("output_0", "label")]  # fmt: skip
    return kserve.InferRequest(MODEL, [tensor], request_id="k-1", request_outputs=outputs)


def test_kserves_rest_client_over_every_route(live: Live, served: dict[str, Any]) -> None:
    async def run() -> None:
        config = kserve.RESTConfig(protocol="v2", retries=0, timeout=60)
        async with kserve.InferenceRESTClient(config) as client:
            assert await client.is_server_live(live.base_url)
            assert await client.is_server_ready(live.base_url)
            assert await client.is_model_ready(live.base_url, MODEL, headers=auth())
            assert not await client.is_model_ready(live.base_url, "no-such", headers=auth())
            for binary in (True, False):
                answered: dict[str, str] = {}
                answer = await client.infer(live.base_url, kserve_request(binary), MODEL,
                                            headers=auth(), response_headers=answered)  # fmt: skip
                assert isinstance(answer, kserve.InferResponse) and answer.id == "k-1"
                # The client decodes binary outputs itself: the headers say which it got.
                assert (HEADER in answered) == binary
                output, label = answer.outputs
                np.testing.assert_allclose(output.as_numpy(), served["predictions"],
                                           rtol=1e-6, atol=1e-7)  # fmt: skip
                assert labels_of(label.as_numpy().tolist()) == served["labels"]
            wrong = kserve.InferRequest(
                MODEL, [kserve.InferInput("x", [1, 2], "FP32", data=[1.0, 2.0])]
            )
            with pytest.raises(httpx.HTTPStatusError, match=r"inputs\[0\]\.shape must be"):
                await client.infer(live.base_url, wrong, MODEL, headers=auth())

    asyncio.run(run())


def test_tritonclient_over_grpc_beside_http(live: Live, served: dict[str, Any]) -> None:
    child = ClientProcess()
    try:
        health = child.run(foreign_grpc_clients.triton_health, live.grpc_address, API_KEY, MODEL)
        answer = child.run(foreign_grpc_clients.triton_infer, live.grpc_address, API_KEY, MODEL,
                           ROWS)  # fmt: skip
    finally:
        child.close()
    assert [health["live"], health["ready"], health["model_ready"]] == [True, True, True]
    assert answer["raw"] is True and answer["model_version"] == "1"
    np.testing.assert_allclose(answer["outputs"]["output_0"], served["predictions"],
                               rtol=1e-6, atol=1e-7)  # fmt: skip
    assert labels_of(answer["outputs"]["label"]) == served["labels"]
