"""/v2 held to the Open Inference Protocol's own OpenAPI document
(tests/oip/open_inference_rest.yaml, the protocol maintainers' file), fuzzed
with schemathesis in process (WSGI) on the real Redis.

The document's paths name the model `${MODEL_NAME}` and `${MODEL_VERSION}`:
both are pinned to a trained, loaded model, so every answer is held to the
document's success schemas, not only its errors.

The document describes any model's tensors, so most requests it allows do not
fit this model, and the protocol answers them 400 (documented). Half of the
infer requests are pinned to the model like the path: the one input tensor
fits it and the outputs it names are its own, everything else (id,
parameters) as generated; those must be accepted. schemathesis' default checks
apply to every request: no 5xx, documented statuses, media types, headers and
schemas, an invalid request refused; and a valid one accepted, for the
requests that fit the model.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from flask import Flask
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from werkzeug.test import Client

from tests.conftest import API_KEY

DOCUMENT = Path(__file__).resolve().parents[1] / "oip" / "open_inference_rest.yaml"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "oip-document"
PINNED = {"MODEL_NAME": MODEL, "MODEL_VERSION": "1"}
OUTPUTS = ["output_0", "label"]  # the model's, as its metadata says
CSV = b"a,b,y\n" + b"".join(f"{i % 5},{i % 3},{'ab'[i % 2]}\n".encode() for i in range(24))
SPEC: dict[str, Any] = {
    "input_shape": [2],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"},
               {"type": "dense", "units": 1, "activation": "sigmoid"}],
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 8},
    "seed": 0,
}  # fmt: skip


def load_document() -> Any:
    # `${NAME}` is no OpenAPI path template; `{NAME}` is, and the tests pin it.
    text = DOCUMENT.read_text().replace("${MODEL_NAME}", "{MODEL_NAME}")
    return yaml.safe_load(text.replace("${MODEL_VERSION}", "{MODEL_VERSION}"))


schema = schemathesis.openapi.from_dict(load_document())


@pytest.fixture(scope="module")
def trained_models() -> dict[str, Path]:
    """The model store after one training run: filled by the first test, copied by the rest."""
    return {}


@pytest.fixture
def served(
    app: Flask,
    publish: Callable[..., dict[str, Any]],
    trained_models: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Flask:
    """`app`, serving MODEL version 1, loaded and warm."""
    models_dir = app.extensions["fitserve"].settings.data_dir / "models"
    if "store" in trained_models:
        shutil.copytree(trained_models["store"], models_dir)
    else:
        publish(MODEL, SPEC, CSV, "text/csv")
        trained_models["store"] = tmp_path_factory.mktemp("oip-models") / "models"
        shutil.copytree(models_dir, trained_models["store"])
    # The document allows model ready only a 200: ask (which starts the load)
    # until the version is ready, as a client would.
    client = app.test_client()
    deadline = time.monotonic() + 120
    while client.get(f"/v2/models/{MODEL}/versions/1/ready", headers=AUTH).status_code != 200:
        assert time.monotonic() < deadline, "the model never became ready"
        time.sleep(0.05)
    return app


# One input tensor that fits the model: rows of two numbers.
FITTING = st.lists(
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=2, max_size=2), min_size=1, max_size=4
).map(lambda rows: {"name": "x", "datatype": "FP32", "shape": [len(rows), 2],
                    "data": [value for row in rows for value in row]})  # fmt: skip


class ClosingClient(Client):
    """Reads each answer whole and closes it, as a WSGI server does (see
    tests/service/test_fuzz.py)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return super().open(*args, **{**kwargs, "buffered": True})


def test_the_document_is_the_protocols_with_its_licence() -> None:
    text = DOCUMENT.read_text()
    assert "Copyright 2023 The KServe Authors" in text and "Apache License" in text
    assert {"/v2/health/live", "/v2/health/ready", "/v2/"} <= set(load_document()["paths"])


@schema.parametrize()
@schema.given(fitting=st.one_of(st.none(), FITTING))
@hypothesis.settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
def test_every_operation_answers_as_the_protocol_documents(
    case: schemathesis.Case, fitting: dict[str, Any] | None, served: Flask
) -> None:
    if case.path_parameters:
        case.path_parameters.update({k: v for k, v in PINNED.items() if k in case.path_parameters})
    fits = (fitting is not None and case.meta is not None and isinstance(case.body, dict)
            and case.meta.generation.mode == GenerationMode.POSITIVE)  # fmt: skip
    if fits:
        pin_to_the_model(case.body, fitting)
    client = ClosingClient(served, served.response_class)
    # A request that fits the document but not the model is the 400 the document lists.
    excluded = [] if fits or case.method != "POST" else [positive_data_acceptance]
    case.call_and_validate(app=served, session=client, headers=AUTH, excluded_checks=excluded)


def pin_to_the_model(body: dict[str, Any], fitting: Any) -> None:
    body["inputs"] = [fitting]
    for index, output in enumerate(body.get("outputs") or []):
        output["name"] = OUTPUTS[index % len(OUTPUTS)]
