"""The Open Inference Protocol beyond JSON tensors: server metadata, the
protocol's error shape on every /v2 status, and the binary tensor data
extension (bodies built byte by byte here, as the extension's text says;
tests/e2e/test_oip_clients.py drives the same routes with tritonclient and
KServe's client)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app

HEADER = "Inference-Header-Content-Length"
X = np.random.default_rng(8).normal(size=(40, 3)).astype(np.float32)
LABELS = np.array(["low", "high"])[(X[:, 0] + X[:, 1] > 0).astype(int)]
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 5, "activation": "relu"},
               {"type": "dense", "units": 2, "activation": "softmax"}],
    "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 8},
    "seed": 4,
}  # fmt: skip


@pytest.fixture
def levels(publish: Callable[..., dict[str, Any]]) -> str:
    body = json.dumps({"x": X.tolist(), "y": LABELS.tolist()}).encode()
    publish("levels", SPEC, body, "application/json")
    return "levels"


def binary_body(header: dict[str, Any], *tensors: bytes) -> tuple[bytes, dict[str, str]]:
    """A body of the extension: the JSON header, then each tensor's bytes."""
    head = json.dumps(header).encode()
    return head + b"".join(tensors), {HEADER: str(len(head))}


def binary_input(rows: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "x", "shape": list(rows.shape), "datatype": datatype,
            "parameters": {"binary_data_size": rows.nbytes}}  # fmt: skip


def split_answer(response: Any) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers[HEADER])
    return json.loads(response.data[:length]), response.data[length:]


def decode_strings(raw: bytes) -> list[str]:
    strings, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        strings.append(raw[offset + 4 : offset + 4 + length].decode())
        offset += 4 + length
    return strings


def test_server_metadata_names_the_binary_extension(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    for path in ("/v2", "/v2/"):  # the protocol's document spells it with the slash
        answer = client.get(path, headers=auth)
        assert answer.status_code == 200
        assert answer.json == {"name": "fitserve", "version": version("fitserve"),
                               "extensions": ["binary_tensor_data"]}  # fmt: skip


def json_answer(client: FlaskClient, auth: dict[str, str], rows: np.ndarray) -> dict[str, Any]:
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.reshape(-1).tolist()}]}  # fmt: skip
    response = client.post("/v2/models/levels/infer", json=body, headers=auth)
    assert response.status_code == 200, response.json
    return dict(response.json)


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16", "INT32", "UINT8"])
def test_binary_inputs_and_outputs_answer_as_json_does(
    client: FlaskClient, auth: dict[str, str], levels: str, datatype: str
) -> None:
    # Values every datatype holds exactly, so all answer the same as FP32.
    rows = np.array([[1, 2, 0], [0, 3, 1], [2, 0, 2]], dtype=np.float32)
    as_json = json_answer(client, auth, rows)
    typed = rows.astype({"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "INT32": "<i4",
                         "UINT8": "u1"}[datatype])  # fmt: skip
    header = {"inputs": [binary_input(typed, datatype)], "parameters": {"binary_data_output": True}}
    body, headers = binary_body(header, typed.tobytes())
    response = client.post(f"/v2/models/{levels}/infer", data=body, headers={**auth, **headers},
                           content_type="application/octet-stream")  # fmt: skip
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/octet-stream"
    answer, tail = split_answer(response)
    output, label = answer["outputs"]
    assert "data" not in output and "data" not in label
    assert output["shape"] == [3, 2] and label == {
        "name": "label", "datatype": "BYTES", "shape": [3],
        "parameters": {"binary_data_size": len(tail) - 24},
    }  # fmt: skip
    assert output["parameters"] == {"binary_data_size": 24}
    np.testing.assert_allclose(np.frombuffer(tail[:24], "<f4"), as_json["outputs"][0]["data"],
                               rtol=1e-6)  # fmt: skip
    assert decode_strings(tail[24:]) == as_json["outputs"][1]["data"]


def test_each_output_may_say_binary_or_json(
    client: FlaskClient, auth: dict[str, str], levels: str
) -> None:
    rows = X[:4]
    as_json = json_answer(client, auth, rows)
    # The request asks for binary outputs, and the label's own flag overrides it.
    header = {"inputs": [binary_input(rows)], "parameters": {"binary_data_output": True},
              "outputs": [{"name": "label", "parameters": {"binary_data": False}},
                          {"name": "output_0"}]}  # fmt: skip
    body, headers = binary_body(header, rows.tobytes())
    response = client.post("/v2/models/levels/infer", data=body, headers={**auth, **headers})
    answer, tail = split_answer(response)
    output, label = answer["outputs"]
    assert label["data"] == as_json["outputs"][1]["data"] and "parameters" not in label
    np.testing.assert_allclose(np.frombuffer(tail, "<f4"), as_json["outputs"][0]["data"])
    # Binary inputs, JSON outputs: a JSON answer, no header.
    body, headers = binary_body({"inputs": [binary_input(rows)]}, rows.tobytes())
    response = client.post("/v2/models/levels/infer", data=body, headers={**auth, **headers})
    assert response.mimetype == "application/json" and HEADER not in response.headers
    assert response.json["outputs"][1] == as_json["outputs"][1]


def test_a_raw_binary_request_is_the_input_alone(
    client: FlaskClient, auth: dict[str, str], levels: str
) -> None:
    rows = X[:5]
    as_json = json_answer(client, auth, rows)
    response = client.post("/v2/models/levels/infer", data=rows.tobytes(),
                           headers={**auth, HEADER: "0"})  # fmt: skip
    assert response.status_code == 200, response.data[:300]
    answer, tail = split_answer(response)
    assert [output["parameters"]["binary_data_size"] for output in answer["outputs"]] == [
        40, len(tail) - 40,
    ]  # fmt: skip
    np.testing.assert_allclose(np.frombuffer(tail[:40], "<f4"), as_json["outputs"][0]["data"])
    # Bytes that are no whole number of rows are refused.
    response = client.post("/v2/models/levels/infer", data=rows.tobytes()[:-4],
                           headers={**auth, HEADER: "0"})  # fmt: skip
    assert response.status_code == 400 and response.json["details"][0]["loc"] == ["body"]


ROWS = X[:2]
GOOD = {"inputs": [binary_input(ROWS)]}


def with_input(**change: Any) -> dict[str, Any]:
    return {"inputs": [{**binary_input(ROWS), **change}]}


# (what, JSON header, binary part, header value or None for the right one, loc)
BINARY_MISTAKES = [
    ("header past the body", GOOD, ROWS.tobytes(), "99999", ["header", HEADER]),
    ("header not a number", GOOD, ROWS.tobytes(), "12a", ["header", HEADER]),
    ("header negative", GOOD, ROWS.tobytes(), "-5", ["header", HEADER]),
    ("size past the end", GOOD, ROWS.tobytes()[:-1], None,
     ["inputs", 0, "parameters", "binary_data_size"]),
    ("bytes left over", GOOD, ROWS.tobytes() + b"\0" * 4, None, ["header", HEADER]),
    ("size not the shape's", with_input(shape=[1, 3]), ROWS.tobytes(), None,
     ["inputs", 0, "parameters", "binary_data_size"]),
    ("size a string", with_input(parameters={"binary_data_size": "24"}), ROWS.tobytes(), None,
     ["inputs", 0, "parameters", "binary_data_size"]),
    ("size true", with_input(parameters={"binary_data_size": True}), ROWS.tobytes(), None,
     ["inputs", 0, "parameters", "binary_data_size"]),
    ("data as well", with_input(data=[1, 2, 3, 4, 5, 6]), ROWS.tobytes(), None,
     ["inputs", 0, "data"]),
    ("unknown datatype", with_input(datatype="FP8"), ROWS.tobytes(), None,
     ["inputs", 0, "datatype"]),
    ("huge shape", with_input(shape=[2**62, 2**62]), ROWS.tobytes(), None,
     ["inputs", 0, "parameters", "binary_data_size"]),
    ("negative shape", with_input(shape=[-2, 3]), ROWS.tobytes(), None, ["inputs", 0, "shape"]),
    ("BYTES for a numeric model", with_input(datatype="BYTES", shape=[1],
                                             parameters={"binary_data_size": 7}),
     struct.pack("<I", 3) + b"abc", None, ["inputs", 0, "datatype"]),
    ("BYTES that run past their size", with_input(datatype="BYTES", shape=[2],
                                                  parameters={"binary_data_size": 8}),
     struct.pack("<I", 3) + b"abcd", None, ["inputs", 0, "parameters", "binary_data_size"]),
    ("binary_data_output a string", {**GOOD, "parameters": {"binary_data_output": "yes"}},
     ROWS.tobytes(), None, ["parameters", "binary_data_output"]),
    ("binary_data a number", {**GOOD, "outputs": [{"name": "label",
                                                   "parameters": {"binary_data": 1}}]},
     ROWS.tobytes(), None, ["outputs", 0, "parameters", "binary_data"]),
    ("no inputs list", {"inputs": "x"}, ROWS.tobytes(), None, ["inputs"]),
]  # fmt: skip


def test_binary_mistakes_are_400s_that_say_where(
    client: FlaskClient, auth: dict[str, str], levels: str
) -> None:
    problems = []
    for what, header, tail, length, loc in BINARY_MISTAKES:
        body, headers = binary_body(header, tail)
        if length is not None:
            headers[HEADER] = length
        response = client.post("/v2/models/levels/infer", data=body, headers={**auth, **headers})
        answer = response.json
        got = (response.status_code, answer["details"][0]["loc"] if answer["details"] else None)
        if got != (400, loc) or "Received:" not in answer["error"]:
            problems.append(f"{what}: {got} {answer}")
    assert not problems, "\n".join(problems)
    # No header at all: an input that claims binary data has none to take.
    response = client.post("/v2/models/levels/infer", json=GOOD, headers=auth)
    assert response.status_code == 400
    assert f"no {HEADER} header" in response.json["error"]


def assert_oip_error(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"error", "code", "details"}, body
    assert isinstance(body["error"], str) and body["code"] == code, body
    assert all(word in body["error"] for word in words), body


def test_every_v2_error_takes_the_protocols_shape(
    client: FlaskClient, auth: dict[str, str], levels: str
) -> None:
    assert_oip_error(client.get("/v2/models/nothing", headers=auth), 404, "not_found", "nothing")
    assert_oip_error(client.get("/v2/nothing", headers=auth), 404, "not_found", "/v2/nothing")
    assert_oip_error(client.get("/v2/models/levels/infer", headers=auth), 405,
                     "method_not_allowed", "POST")  # fmt: skip
    assert_oip_error(client.get("/v2/models/levels"), 401, "unauthorized", "Authorization")
    bad = client.post("/v2/models/levels/infer", data=b"{", headers=auth)
    assert_oip_error(bad, 400, "malformed_body", "not valid JSON")
    assert bad.json["details"] == [{"loc": ["body"], "msg": bad.json["details"][0]["msg"]}]
    # The rest of the API keeps its own shape.
    assert client.get("/v1/models/nothing", headers=auth).json["error"]["code"] == "not_found"


def test_a_v2_body_over_the_upload_limit_and_a_redis_failure_take_it_too(
    settings: Settings, auth: dict[str, str]
) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_upload_bytes": 1024})}
    )
    app: Flask = create_app(small)

    def redis_fails() -> None:
        raise redis.ConnectionError("Connection refused")

    # Any /v2 route that reads Redis (a label, later) fails through the same handler.
    app.add_url_rule("/v2/redis-probe", view_func=redis_fails)
    client = app.test_client()
    too_large = client.post("/v2/models/levels/infer", data=b"0" * 4096, headers=auth)
    assert_oip_error(too_large, 413, "payload_too_large", "upload limit")
    assert_oip_error(client.get("/v2/redis-probe", headers=auth), 503, "service_unavailable",
                     "Redis")  # fmt: skip


def test_an_empty_outputs_list_asks_for_every_output(
    client: FlaskClient, auth: dict[str, str], levels: str
) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
            "outputs": []}  # fmt: skip
    response = client.post("/v2/models/levels/infer", json=body, headers=auth)
    assert [output["name"] for output in response.json["outputs"]] == ["output_0", "label"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_answers_as_the_plain_one(
    client: FlaskClient, auth: dict[str, str], levels: str, encoding: str
) -> None:
    # tritonclient's and kserve's request compression: the whole body, the
    # extension's header length counting the plain bytes.
    rows = np.array([[1, 2, 0], [0, 3, 1]], dtype=np.float32)
    as_json = json_answer(client, auth, rows)
    body, headers = binary_body({"inputs": [binary_input(rows)]}, rows.tobytes())
    pack = gzip.compress if encoding == "gzip" else zlib.compress
    packed = pack(body)
    response = client.post(f"/v2/models/{levels}/infer", data=packed,
                           headers={**auth, **headers, "Content-Encoding": encoding})  # fmt: skip
    assert response.status_code == 200, response.data[:300]
    assert response.json["outputs"] == as_json["outputs"]
    v1 = client.post(f"/v1/models/{levels}:predict", headers={**auth, "Content-Encoding": encoding},
                     data=pack(json.dumps({"instances": rows.tolist()}).encode()),
                     content_type="application/json")  # fmt: skip
    assert v1.status_code == 200, v1.json
    np.testing.assert_allclose(v1.json["predictions"], np.reshape(as_json["outputs"][0]["data"],
                                                                  (2, 2)), rtol=1e-6)  # fmt: skip


def test_compressed_bodies_are_bounded_and_checked(
    settings: Settings, auth: dict[str, str]
) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_upload_bytes": 1 << 20})}
    )
    client = create_app(small).test_client()
    infer = "/v2/models/levels/infer"
    # 64 MiB of zeros is 64 KiB of gzip: refused as it inflates past the limit.
    bomb = gzip.compress(bytes(64 << 20), compresslevel=1)
    assert len(bomb) < 1 << 20
    answer = client.post(infer, data=bomb, headers={**auth, "Content-Encoding": "gzip"})
    assert_oip_error(answer, 413, "payload_too_large", "once decompressed")
    brotli = client.post(infer, data=b"{}", headers={**auth, "Content-Encoding": "br"})
    assert_oip_error(brotli, 415, "unsupported_media_type", "'br'", "gzip")
    assert brotli.json["details"][0]["loc"] == ["header", "Content-Encoding"]
    garbage = client.post(infer, data=b"not gzip", headers={**auth, "Content-Encoding": "gzip"})
    assert_oip_error(garbage, 400, "malformed_body", "not valid gzip")
    cut = gzip.compress(b'{"inputs": []}')[:-12]
    cut_off = client.post(infer, data=cut, headers={**auth, "Content-Encoding": "gzip"})
    assert_oip_error(cut_off, 400, "malformed_body", "ends before")
