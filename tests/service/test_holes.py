"""Client mistakes that were 500s are 4xx that say what and where, and error
messages quote a few items of what they received, never all of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from models.errors import quoted

X = np.random.default_rng(3).normal(size=(12, 4)).round(3)
SPEC = {
    "input_shape": [4],
    "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 4},
    "seed": 1,
}  # fmt: skip


def infer_body(**tensor: Any) -> dict[str, Any]:
    fields = {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X[:2].reshape(-1).tolist()}
    return {"inputs": [{**fields, **tensor}]}


# (what is wrong, the body, where the 400 says it is)
INFER_MISTAKES: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("datatype a list", infer_body(datatype=["FP32"]), ["inputs", 0, "datatype"]),
    ("datatype an object", infer_body(datatype={"FP32": 1}), ["inputs", 0, "datatype"]),
    ("shape holding true", infer_body(shape=[True, 4]), ["inputs", 0, "shape"]),
    ("sample shape true", infer_body(shape=[2, True]), ["inputs", 0, "shape"]),
    ("shape of floats", infer_body(shape=[2.0, 4]), ["inputs", 0, "shape"]),
    # 4 * (2**62 + 2) wraps around to 8 in int64: as many as the data holds.
    ("shape overflowing", infer_body(shape=[2**62 + 2, 4]), ["inputs", 0, "shape", 0]),
    ("shape beyond int64", infer_body(shape=[2**64 - 1, 4]), ["inputs", 0, "shape", 0]),
    ("shape a huge float", infer_body(shape=[1e20, 4]), ["inputs", 0, "shape"]),
    ("outputs a string", {**infer_body(), "outputs": "output_0"}, ["outputs"]),
    ("outputs a number", {**infer_body(), "outputs": 7}, ["outputs"]),
    ("outputs an object", {**infer_body(), "outputs": {"name": "label"}}, ["outputs"]),
    ("output name a list", {**infer_body(), "outputs": [{"name": ["output_0"]}]},
     ["outputs", 0, "name"]),
    ("output name a number", {**infer_body(), "outputs": [{"name": 0}]}, ["outputs", 0, "name"]),
    ("output a bare string", {**infer_body(), "outputs": ["output_0"]}, ["outputs", 0, "name"]),
    ("second output unknown", {**infer_body(), "outputs": [{"name": "output_0"}, {"name": "x"}]},
     ["outputs", 1, "name"]),
]  # fmt: skip


def test_v2_infer_mistakes_are_400s_that_say_where(
    client: FlaskClient, auth: dict[str, str], publish: Callable[..., dict[str, Any]]
) -> None:
    body = json.dumps({"x": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()}).encode()
    publish("probe", SPEC, body, "application/json")  # once: every case below uses it
    answers = {}
    for what, request, loc in INFER_MISTAKES:
        response = client.post("/v2/models/probe/infer", data=json.dumps(request),
                               content_type="application/json", headers=auth)  # fmt: skip
        # V2's errors take the protocol's shape: `error` is the message.
        answers[what] = (response.status_code, response.json["details"][0]["loc"])
        assert answers[what] == (400, loc), (what, response.json)
        assert len(response.json["error"]) < 400, what
    # The request that is right still answers.
    good = client.post("/v2/models/probe/infer", json=infer_body(), headers=auth)
    assert good.status_code == 200 and good.json["outputs"][0]["shape"] == [2, 1]


def test_v2_infer_quotes_a_few_of_many_outputs(
    client: FlaskClient, auth: dict[str, str], publish: Callable[..., dict[str, Any]]
) -> None:
    body = json.dumps({"x": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()}).encode()
    publish("probe", SPEC, body, "application/json")
    shape = [2] + [4] * 10_000
    response = client.post("/v2/models/probe/infer", json=infer_body(shape=shape), headers=auth)
    assert response.status_code == 400
    message = response.json["error"]  # the protocol's shape: the message itself
    assert "(10,001 in all)" in message and len(message) < 300


@pytest.mark.parametrize("limit", ["²", "٣", "9" * 5000, "-1", "1e3", " 5"])
def test_job_listing_limits_that_are_no_plain_integer_are_422s(
    client: FlaskClient, auth: dict[str, str], limit: str
) -> None:
    response = client.get("/v1/jobs", query_string={"limit": limit}, headers=auth)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["details"][0]["loc"] == ["query", "limit"]
    assert "limit must be an integer from 1 to 500" in error["message"]
    assert len(error["message"]) < 300


def test_a_multipart_job_without_a_spec_quotes_a_few_of_its_parts(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    fields = {f"part-{index:03}": "x" for index in range(200)}
    response = client.post(
        "/v1/jobs", data=fields, content_type="multipart/form-data", headers=auth
    )
    assert response.status_code == 400
    message = response.json["error"]["message"]
    assert "(200 in all)" in message and len(message) < 300


def test_validation_messages_quote_a_few_items_of_a_long_list(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    spec = {**SPEC, "input_shape": ["wide"] * 1000}
    response = client.post(
        "/v1/jobs", json={"model": "m", "spec": spec, "dataset": "0" * 64}, headers=auth
    )
    assert response.status_code == 422
    details = response.json["error"]["details"]
    assert details[0]["loc"] == ["spec", "input_shape"], details[0]
    assert "(1,000 in all)" in details[0]["msg"], details[0]
    assert all(len(detail["msg"]) < 300 for detail in details)


def test_quoted_keeps_a_few_items_and_says_how_many() -> None:
    assert quoted(list(range(1000))) == "[0, 1, 2, 3, 4, ... (1,000 in all)]"
    assert quoted([1, 2]) == "[1, 2]"
    assert quoted({"a": list(range(9))}) == "{'a': [0, 1, 2, ... (9 in all)]}"
    assert quoted("x" * 500).endswith("... (502 characters)") and len(quoted("x" * 500)) < 110
    assert quoted(True) == "True" and quoted(None) == "None"


def test_an_unknown_version_lists_a_few_of_the_versions() -> None:
    from models.errors import NotFound
    from models.storage.model_store import resolve_in

    with pytest.raises(NotFound) as caught:
        resolve_in("iris", 5000, list(range(1, 4000)))
    assert "(3,999 in all)" in caught.value.message and len(caught.value.message) < 200
