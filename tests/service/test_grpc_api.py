"""The Open Inference Protocol over gRPC (service.grpc_api), spoken with our
own inference.proto messages: keys, raw and typed tensors of every numeric
type, outputs raw or typed as the client sent, labels where a version goes,
and hostile requests, each refused with the status and the place named and
never an allocation of what a shape declares. Triton's and KServe's own
clients: tests/service/test_grpc_clients.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from flask.testing import FlaskClient
from tritonclient.utils import deserialize_bytes_tensor

from models.settings import Limits, Settings
from service.app import create_app
from service.grpc_api.protocol import ModelInferRequest
from tests.oip_grpc import OipChannel, grpc_server
from tests.service.conftest import PETS_SPEC, PETS_X

X = PETS_X
ROOT = Path(__file__).resolve().parents[2]
MOST_ROWS = 100
MOST_BYTES = 16 * 1024
INVALID = grpc.StatusCode.INVALID_ARGUMENT
ROWS = np.array([[1, 2, 0, 1], [0, 3, 1, 2], [2, 0, 2, 0]], dtype=np.float32)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small limits, so that too many rows and too large a message are cheap to send."""
    limits = Limits(max_predict_rows=MOST_ROWS, max_upload_bytes=MOST_BYTES)
    return settings.model_copy(update={"limits": limits})


@pytest.fixture
def oip(grpc_address: str) -> Iterator[OipChannel]:
    channel = OipChannel(grpc_address)
    yield channel
    channel.close()


def raw_request(rows: np.ndarray, datatype: str = "FP32", **extra: Any) -> Any:
    tensor = {"name": "x", "datatype": datatype, "shape": list(rows.shape)}
    return ModelInferRequest(**{"model_name": "pets", "inputs": [tensor],
                                "raw_input_contents": [rows.tobytes()], **extra})  # fmt: skip


def typed_request(rows: np.ndarray, datatype: str, field: str) -> Any:
    tensor = {"name": "x", "datatype": datatype, "shape": list(rows.shape),
              "contents": {field: rows.reshape(-1).tolist()}}  # fmt: skip
    return ModelInferRequest(model_name="pets", inputs=[tensor])


def raw_outputs(answer: Any) -> dict[str, Any]:
    """Each output of an answer in raw_output_contents, decoded (BYTES by
    Triton's own decoder)."""
    decoded: dict[str, Any] = {}
    for output, raw in zip(answer.outputs, answer.raw_output_contents, strict=True):
        if output.datatype == "BYTES":
            decoded[output.name] = [value.decode() for value in deserialize_bytes_tensor(raw)]
        else:
            dtype = {"FP32": "<f4", "INT64": "<i8"}[output.datatype]
            decoded[output.name] = np.frombuffer(raw, dtype).reshape(list(output.shape))
    return decoded


def test_health_needs_no_key_and_every_other_rpc_needs_one(grpc_address: str, pets: str) -> None:
    anonymous = OipChannel(grpc_address, key=None)
    assert anonymous.call("ServerLive").live is True
    assert anonymous.call("ServerReady").ready is True
    needs = "This route needs an API key: send 'Authorization: Bearer <key>'. Received: "
    for rpc, fields in (("ServerMetadata", {}), ("ModelReady", {"name": "pets"}),
                        ("ModelMetadata", {"name": "pets"}),
                        ("ModelInfer", {"model_name": "pets"})):  # fmt: skip
        assert anonymous.refusal(rpc, **fields) == (
            grpc.StatusCode.UNAUTHENTICATED,
            needs + "no Authorization header",
        ), rpc
    stranger = OipChannel(grpc_address, key="not-a-key-of-ours-at-all")
    assert stranger.refusal("ModelMetadata", name="pets") == (
        grpc.StatusCode.UNAUTHENTICATED, "The API key is not valid. Received: an unknown key"
    )  # fmt: skip
    stranger.metadata = [("authorization", "Token abc")]
    assert stranger.refusal("ServerMetadata")[1] == needs + "a malformed header"
    for channel in (anonymous, stranger):
        channel.close()


def test_repository_rpcs_are_not_served(oip: OipChannel) -> None:
    assert oip.refusal("RepositoryModelLoad", model_name="pets")[0] == (
        grpc.StatusCode.UNIMPLEMENTED
    )


def test_metadata_and_readiness_answer_as_http_does(
    oip: OipChannel, client: FlaskClient, auth: dict[str, str], pets: str
) -> None:
    assert oip.call("ModelInfer", raw_request(ROWS)).model_version == "1"  # loaded and warm
    assert oip.call("ModelReady", name="pets").ready is True
    assert oip.call("ModelReady", name="pets", version="1").ready is True
    server = oip.call("ServerMetadata")
    over_http = client.get("/v2", headers=auth).json
    assert over_http == {"name": server.name, "version": server.version,
                         "extensions": list(server.extensions)}  # fmt: skip
    metadata = oip.call("ModelMetadata", name="pets")
    expected = client.get("/v2/models/pets", headers=auth).json
    assert [list(metadata.versions), metadata.platform] == [expected["versions"], "keras"]
    for ours, theirs in ((metadata.inputs, expected["inputs"]),
                         (metadata.outputs, expected["outputs"])):  # fmt: skip
        assert [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                for t in ours] == theirs  # fmt: skip


def test_raw_inputs_get_raw_outputs_equal_to_http_infer(
    oip: OipChannel, client: FlaskClient, auth: dict[str, str], pets: str
) -> None:
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                        "data": ROWS.reshape(-1).tolist()}]}  # fmt: skip
    expected = client.post("/v2/models/pets/infer", json=body, headers=auth).json["outputs"]
    for datatype, dtype in (("FP32", "<f4"), ("FP64", "<f8"), ("FP16", "<f2"),
                            ("INT32", "<i4"), ("UINT8", "u1"), ("INT64", "<i8")):  # fmt: skip
        answer = oip.call("ModelInfer", raw_request(ROWS.astype(dtype), datatype, id="r-1"))
        assert answer.id == "r-1" and answer.model_name == "pets" and answer.model_version == "1"
        assert [output.name for output in answer.outputs] == ["output_0", "label"]
        assert not any(output.HasField("contents") for output in answer.outputs)
        outputs = raw_outputs(answer)
        np.testing.assert_allclose(outputs["output_0"].reshape(-1), expected[0]["data"],
                                   rtol=1e-6)  # fmt: skip
        assert outputs["label"] == expected[1]["data"], datatype


@pytest.mark.parametrize(
    ("datatype", "field"),
    [("FP32", "fp32_contents"), ("FP64", "fp64_contents"), ("INT32", "int_contents"),
     ("INT8", "int_contents"), ("INT64", "int64_contents"), ("UINT16", "uint_contents"),
     ("UINT64", "uint64_contents")],
)  # fmt: skip
def test_typed_inputs_get_typed_outputs(
    oip: OipChannel, pets: str, datatype: str, field: str
) -> None:
    as_raw = raw_outputs(oip.call("ModelInfer", raw_request(ROWS)))
    values = ROWS.astype(np.int64) if "INT" in datatype else ROWS
    answer = oip.call("ModelInfer", typed_request(values, datatype, field))
    assert not answer.raw_output_contents
    output, label = answer.outputs
    assert list(output.shape) == [3, 2] and list(label.shape) == [3]
    np.testing.assert_allclose(output.contents.fp32_contents, as_raw["output_0"].reshape(-1))
    assert [value.decode() for value in label.contents.bytes_contents] == as_raw["label"]


def test_only_the_requested_outputs_come_back(oip: OipChannel, pets: str) -> None:
    answer = oip.call("ModelInfer", raw_request(ROWS, outputs=[{"name": "label"}]))
    assert [output.name for output in answer.outputs] == ["label"]
    assert len(answer.raw_output_contents) == 1
    unknown = raw_request(ROWS, outputs=[{"name": "label"}, {"name": "probabilities"}])
    status, message = oip.refusal("ModelInfer", unknown)
    assert status == INVALID and message.startswith('outputs[1] must be {"name": <one of')


def test_numeric_classes_come_back_as_int64(
    oip: OipChannel, publish: Callable[..., dict[str, Any]]
) -> None:
    body = json.dumps({"x": X.tolist(), "y": (X[:, 1] > 0).astype(int).tolist()}).encode()
    publish("digits", PETS_SPEC, body, "application/json")
    request = raw_request(ROWS, model_name="digits")
    label = oip.call("ModelInfer", request).outputs[1]
    assert label.datatype == "INT64"
    typed = typed_request(ROWS, "FP32", "fp32_contents")
    typed.model_name = "digits"
    assert set(oip.call("ModelInfer", typed).outputs[1].contents.int64_contents) <= {0, 1}
    metadata = oip.call("ModelMetadata", name="digits")
    assert [output.datatype for output in metadata.outputs] == ["FP32", "INT64"]


def test_labels_stand_where_versions_go_and_unknown_ones_are_not_found(
    oip: OipChannel, client: FlaskClient, auth: dict[str, str], pets: str
) -> None:
    moved = client.put("/v1/models/pets/labels/stable", json={"version": 1}, headers=auth)
    assert moved.status_code == 200, moved.json
    request = raw_request(ROWS, model_version="stable")
    assert oip.call("ModelInfer", request).model_version == "1"
    assert oip.call("ModelReady", name="pets", version="stable").ready is True
    assert list(oip.call("ModelMetadata", name="pets", version="stable").versions) == ["1"]
    for version in ("canary", "2", "v1.0"):
        request.model_version = version
        http = client.post(f"/v2/models/pets/versions/{version}/infer", headers=auth,
                           json={"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                                             "data": ROWS.reshape(-1).tolist()}]})  # fmt: skip
        assert http.status_code == 404
        assert oip.refusal("ModelInfer", request) == (grpc.StatusCode.NOT_FOUND,
                                                      http.json["error"]), version  # fmt: skip


def test_unknown_models_and_names_that_are_none_are_not_found(
    oip: OipChannel, client: FlaskClient, auth: dict[str, str], pets: str
) -> None:
    for name in ("cats", "Bad/Name", ""):
        status, message = oip.refusal("ModelMetadata", name=name)
        assert status == grpc.StatusCode.NOT_FOUND
        if name == "cats":
            assert message == client.get("/v2/models/cats", headers=auth).json["error"]
        else:
            assert message.startswith("No model has this name: model names match"), message


def hostile(**tensor: Any) -> Callable[[], Any]:
    def build() -> Any:
        raw = tensor.pop("raw", None)
        extra = tensor.pop("extra_inputs", [])
        inputs = [{"name": "x", "datatype": "FP32", **tensor}, *extra]
        raw_contents = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        return ModelInferRequest(model_name="pets", inputs=inputs, raw_input_contents=raw_contents)

    return build


FOUR_FLOATS = np.ones(4, "<f4").tobytes()
HOSTILE = {
    "bytes shorter than the shape": (
        hostile(shape=[2, 4], raw=np.ones(7, "<f4").tobytes()),
        "inputs[0]'s binary data must be 8 elements of 4 bytes (FP32, shape [2, 4]): 32 bytes. "
        "Received: 28 bytes (raw_input_contents[0])",
    ),
    "a huge declared shape": (
        hostile(shape=[2**40, 4], raw=FOUR_FLOATS),
        "Received: 16 bytes (raw_input_contents[0])",
    ),
    "a shape whose product passes int64": (
        hostile(shape=[2**62, 2**62, 4], raw=FOUR_FLOATS),
        "Received: 16 bytes (raw_input_contents[0])",
    ),
    "a huge declared shape, typed": (
        hostile(shape=[2**40, 4], contents={"fp32_contents": [1.0] * 4}),
        "inputs[0].contents.fp32_contents must hold 4,398,046,511,104 elements for shape "
        "[1099511627776, 4]. Received: 4 elements",
    ),
    "a negative dimension": (
        hostile(shape=[-1, 4], raw=FOUR_FLOATS),
        "inputs[0].shape must be a list of integers of 0 or more. Received: [-1, 4]",
    ),
    "no rows": (
        hostile(shape=[0, 4], raw=b""),
        "inputs[0].shape must be [rows, 4]: positive integers. Received: [0, 4]",
    ),
    "the wrong sample shape": (
        hostile(shape=[1, 3], raw=np.ones(3, "<f4").tobytes()),
        "inputs[0].shape must be [rows, 4]: positive integers. Received: [1, 3]",
    ),
    "two inputs": (
        hostile(
            shape=[1, 4],
            contents={"fp32_contents": [1.0] * 4},
            extra_inputs=[
                {
                    "name": "y",
                    "datatype": "FP32",
                    "shape": [1],
                    "contents": {"fp32_contents": [1.0]},
                }
            ],
        ),
        "The model has one input tensor ('x'). Received: 2 inputs",
    ),  # fmt: skip
    "no input": (
        lambda: ModelInferRequest(model_name="pets"),
        "The model has one input tensor ('x'). Received: 0 inputs",
    ),
    "raw and typed both": (
        hostile(shape=[1, 4], raw=FOUR_FLOATS, contents={"fp32_contents": [1.0] * 4}),
        "inputs[0] has contents.fp32_contents, and the request raw_input_contents",
    ),
    "more raw entries than inputs": (
        hostile(shape=[1, 4], raw=[FOUR_FLOATS, FOUR_FLOATS]),
        "raw_input_contents must hold one entry per input, in the order of inputs: 1. "
        "Received: 2 entries",
    ),
    "typed in another type's field": (
        hostile(shape=[1, 4], contents={"int_contents": [1, 2, 3, 4]}),
        "inputs[0] is FP32: its elements go in contents.fp32_contents. "
        "Received: contents.int_contents",
    ),
    "FP16 typed": (
        hostile(shape=[1, 4], datatype="FP16", contents={"fp32_contents": [1.0] * 4}),
        "(FP16 travels in raw_input_contents only). Received: 'FP16'",
    ),
    "an unknown datatype": (
        hostile(shape=[1, 4], datatype="FP8", raw=FOUR_FLOATS),
        "inputs[0].datatype must be one of ['BOOL', 'UINT8',",
    ),
    "strings for numbers": (
        hostile(shape=[1, 4], datatype="BYTES", contents={"bytes_contents": [b"1"] * 4}),
        "inputs[0].datatype must be a numeric type name, e.g. 'FP32'. Received: 'BYTES'",
    ),
    "a NaN": (
        hostile(shape=[1, 4], raw=np.array([1, np.nan, 0, 0], "<f4").tobytes()),
        "inputs[0].data must hold 4 finite numbers for shape [1, 4]. Received: 4 values",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_requests_are_invalid_arguments_that_name_the_place(
    oip: OipChannel, pets: str, case: str
) -> None:
    build, expected = HOSTILE[case]
    status, message = oip.refusal("ModelInfer", build())
    assert status == INVALID, message
    assert expected in message
    assert oip.call("ServerLive").live is True  # and the server is still there


def test_too_many_rows_are_resource_exhausted_and_so_is_too_large_a_message(
    oip: OipChannel, pets: str
) -> None:
    rows = np.ones((MOST_ROWS + 1, 4), np.float32)
    assert oip.refusal("ModelInfer", raw_request(rows)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"inputs[0].shape asks for more rows than a request may hold ({MOST_ROWS}). "
        f"Received: {MOST_ROWS + 1} rows",
    )  # fmt: skip
    too_large = raw_request(np.ones((MOST_BYTES // 16 + 1, 4), np.float32))
    status, message = oip.refusal("ModelInfer", too_large)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in message


def test_the_protocol_compiles_in_a_process_that_has_loaded_tensorflow() -> None:
    """grpcio-tools' protoc in such a process crashes it (their protobuf
    libraries clash): service.grpc_api.protocol runs it in a child instead."""
    script = "import tensorflow\nfrom service.grpc_api import protocol as p\nprint(p.SERVICE_NAME)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "inference.GRPCInferenceService"


def test_with_redis_away_versions_answer_and_labels_are_unavailable(
    settings: Settings, pets: str
) -> None:
    down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    with grpc_server(down) as address:
        oip = OipChannel(address)
        assert oip.call("ModelInfer", raw_request(ROWS, model_version="1")).model_version == "1"
        status, message = oip.refusal("ModelInfer", raw_request(ROWS, model_version="stable"))
        oip.close()
    assert status == grpc.StatusCode.UNAVAILABLE, message
    assert "Redis" in message, message
