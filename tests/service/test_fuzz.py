"""Fuzzing every operation of /openapi.json with schemathesis, in process (WSGI)
on the real Redis with isolated settings.

Each operation gets valid and invalid requests generated from the document,
derandomized so that CI sees the same ones every run. Half of them carry the
ids of a published model, a stored dataset and a finished job instead of random
ones (and a predict body of rows that fit the model), so the success answers
are held to the document too, not only the 404s. Every answer must be a
documented status (never a 5xx) in a documented media type whose body fits
the documented schema.

The schema is loaded at import from an app that only serves the document
(no request ever touches its data folder or Redis keys); each operation then
runs against its own app, built by the `app` fixture with isolated settings.
Every operation is fuzzed and every check applies to each: multipart uploads
included (schemathesis generates their parts from the documented schema).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import Client

from service.app import create_app
from tests.conftest import API_KEY, isolated_settings

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODEL = "fuzz"
CSV = b"a,b,y\n" + b"".join(f"{i},{i % 3},{i * 0.5}\n".encode() for i in range(16))
SPEC: dict[str, Any] = {
    "input_shape": [2],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 8},
    "seed": 0,
}

# The bodies parsed by hand travel as text or bytes: schemathesis sends a
# generated string or bytes as they are, as it does for text/plain and
# application/octet-stream.
schemathesis.serializer.alias("text/csv", "text/plain")
schemathesis.serializer.alias(
    ["application/x-npy", "application/x-npz"], "application/octet-stream"
)

_DOCUMENT_ONLY = isolated_settings(
    Path(tempfile.gettempdir()) / "fitserve-openapi-never-written"
).model_copy(update={"preload_models": False})
schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(_DOCUMENT_ONLY))


@dataclass(frozen=True)
class Known:
    """Ids that exist in the app under test."""

    dataset: str
    job: str

    def path_values(self) -> dict[str, Any]:
        return {"name": MODEL, "version": 1, "label": "stable", "dataset_id": self.dataset,
                "job_id": self.job}  # fmt: skip


@pytest.fixture(scope="module")
def trained_models() -> dict[str, Path]:
    """The model store after one training run: filled by the first test, copied by the rest."""
    return {}


@pytest.fixture
def known(
    app: Flask,
    publish: Callable[..., dict[str, Any]],
    trained_models: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Known:
    """A published model labelled `stable`, a stored dataset and a cancelled
    prediction job in `app`."""
    models_dir = app.extensions["fitserve"].settings.data_dir / "models"
    if "store" in trained_models:
        shutil.copytree(trained_models["store"], models_dir)
    else:
        publish(MODEL, SPEC, CSV, "text/csv")
        trained_models["store"] = tmp_path_factory.mktemp("fuzz-models") / "models"
        shutil.copytree(models_dir, trained_models["store"])
    client = app.test_client()
    labelled = client.put(f"/v1/models/{MODEL}/labels/stable", json={"version": 1}, headers=AUTH)
    assert labelled.status_code == 200, labelled.json
    # One prediction loads and warms the model, as a served process's start-up
    # warm-up does: until then its ready routes rightly answer 503.
    warmed = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [[0.0, 0.0]]},
                         headers=AUTH)  # fmt: skip
    assert warmed.status_code == 200, warmed.json
    dataset = client.post("/v1/datasets", data=CSV, headers={**AUTH, "Content-Type": "text/csv"})
    assert dataset.status_code in (200, 201), dataset.json
    job = client.post(f"/v1/models/{MODEL}:batchPredict", json={"dataset": dataset.json["id"]},
                      headers=AUTH)  # fmt: skip
    assert job.status_code == 202, job.json
    # Cancelled, so final: the job's event stream ends after its snapshot (no
    # worker runs here, and a queued job's stream would stay open for minutes).
    cancelled = client.post(f"/v1/jobs/{job.json['id']}:cancel", headers=AUTH)
    assert cancelled.json["state"] == "cancelled", cancelled.json
    return Known(dataset=dataset.json["id"], job=job.json["id"])


def use_known_values(case: schemathesis.Case, known: Known, rows: list[list[float]]) -> None:
    for name, value in known.path_values().items():
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = value
    if isinstance(case.body, dict) and "dataset" in case.body:
        case.body["dataset"] = known.dataset
    if case.operation.path.endswith(":predict") and case.media_type == "application/json":
        case.body = {"instances": rows}


# Rows of the known model's input shape [2]: a predict body that succeeds.
ROWS = st.lists(
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=2, max_size=2), min_size=1, max_size=4
)
ACCEPT = st.sampled_from(["*/*", "application/json", "text/csv", "application/x-npy"])


class ClosingClient(Client):
    """Reads each answer whole and closes it, as a WSGI server does.

    schemathesis' WSGI transport reads a body but never closes the response,
    so a file-backed answer (the dashboard page) would stay open and fail the
    suite's warnings-as-errors with a ResourceWarning. Werkzeug's client, not
    Flask's: Flask's encodes JSON with the app's orjson, which cannot write the
    integers beyond 64 bits that schemathesis generates."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return super().open(*args, **{**kwargs, "buffered": True})


def test_the_document_fuzzed_is_the_one_served(app: Flask) -> None:
    assert app.test_client().get("/openapi.json").json == schema.raw_schema


@schema.parametrize()
@schema.given(with_known_values=st.booleans(), rows=ROWS, accept=ACCEPT)
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    # One app per operation, shared by its examples: what one example deletes
    # is gone for the next, as it would be on a real server.
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case,
    with_known_values: bool,
    rows: list[list[float]],
    accept: str,
    app: Flask,
    known: Known,
) -> None:
    if with_known_values:
        use_known_values(case, known, rows)
    client = ClosingClient(app, app.response_class)
    case.call_and_validate(
        app=app, session=client, headers={**AUTH, "Accept": accept}, checks=CHECKS
    )
