"""POST /v1/jobs checks: everything is refused before a job exists. No worker
runs here, so accepted jobs stay queued (the e2e tests run them)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

IRIS_LIKE = b"a,b,c,d,species\n" + b"".join(
    f"{i},{i + 1},{i % 3},{i % 5},{['setosa', 'versicolor', 'virginica'][i % 3]}\n".encode()
    for i in range(30)
)


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "input_shape": [4],
        "layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "compile": {"loss": "categorical_crossentropy", "optimizer": "adam",
                    "metrics": ["accuracy"]},
        "fit": {"epochs": 2, "batch_size": 5},
    }  # fmt: skip
    return {**base, **changes}


@pytest.fixture
def dataset(client: FlaskClient, auth: dict[str, str]) -> str:
    response = client.post(
        "/v1/datasets", data=IRIS_LIKE, headers={**auth, "Content-Type": "text/csv"}
    )
    return str(response.json["id"])


def post_job(client: FlaskClient, auth: dict[str, str], body: Any) -> Any:
    return client.post("/v1/jobs", json=body, headers=auth)


def test_a_valid_job_is_accepted_and_queued(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    response = post_job(client, auth, {"model": "iris", "spec": spec(), "dataset": dataset})
    assert response.status_code == 202
    job = response.json
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["progress"]["epoch"] == 0
    assert job["attempts"] == 0 and job["resumed_from_epoch"] is None
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).json["state"] == "queued"
    listed = client.get("/v1/jobs?state=queued&model=iris", headers=auth).json
    assert [item["id"] for item in listed["jobs"]] == [job["id"]]
    assert client.get("/v1/jobs?state=running", headers=auth).json["jobs"] == []


def test_a_multipart_job_stores_its_dataset(client: FlaskClient, auth: dict[str, str]) -> None:
    part = json.dumps({"model": "iris", "spec": spec()}).encode()
    response = client.post(
        "/v1/jobs",
        data={"spec": (io.BytesIO(part), "spec.json"), "file": (io.BytesIO(IRIS_LIKE), "i.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.json
    dataset = client.get(f"/v1/datasets/{response.json['dataset']}", headers=auth)
    assert dataset.json["rows"] == 30


@pytest.mark.parametrize(
    ("changes", "loc", "words"),
    [
        ({"input_shape": [5]}, ["spec", "input_shape"], "does not match"),
        (
            {"layers": [{"type": "dense", "units": 4, "activation": "softmax"}]},
            ["spec", "layers", 0, "units"],
            "3 classes",
        ),
        (
            {"layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
             "compile": {"loss": "binary_crossentropy"}},
            ["spec", "layers", 0],
            "exactly 2",
        ),
        (
            {"layers": [{"type": "dense", "units": 1}], "compile": {"loss": "mse"}},
            ["spec", "layers", 0],
            "numeric targets",
        ),
    ],
)  # fmt: skip
def test_a_spec_that_does_not_fit_the_dataset_is_refused(
    client: FlaskClient,
    auth: dict[str, str],
    dataset: str,
    changes: dict[str, Any],
    loc: list[Any],
    words: str,
) -> None:
    response = post_job(client, auth, {"model": "m", "spec": spec(**changes), "dataset": dataset})
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "spec_dataset_mismatch"
    assert error["details"][0]["loc"] == loc
    assert words in error["message"]
    assert client.get("/v1/jobs", headers=auth).json["jobs"] == []


def test_an_invalid_spec_names_the_field(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    bad = spec()
    bad["layers"][0]["units"] = 0
    response = post_job(client, auth, {"model": "m", "spec": bad, "dataset": dataset})
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["loc"] == ["spec", "layers", 0, "units"]
    assert "spec.layers.0.units" in response.json["error"]["message"]


@pytest.mark.parametrize("name", ["Iris", "-x", "a/b", "", "x" * 65])
def test_bad_model_names_are_refused(
    client: FlaskClient, auth: dict[str, str], dataset: str, name: str
) -> None:
    response = post_job(client, auth, {"model": name, "spec": spec(), "dataset": dataset})
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["loc"] == ["model"]


def test_an_unknown_dataset_is_refused(client: FlaskClient, auth: dict[str, str]) -> None:
    response = post_job(client, auth, {"model": "m", "spec": spec(), "dataset": "f" * 24})
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["loc"] == ["dataset"]


def test_malformed_json_is_a_400(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/v1/jobs", data=b"{nope", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "malformed_body"


def test_unknown_job_is_404_and_queued_job_cancels(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    assert client.get("/v1/jobs/" + "0" * 32, headers=auth).status_code == 404
    job = post_job(client, auth, {"model": "m", "spec": spec(), "dataset": dataset}).json
    cancelled = client.post(f"/v1/jobs/{job['id']}:cancel", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.json["state"] == "cancelled" and cancelled.json["finished_at"]
    again = client.post(f"/v1/jobs/{job['id']}:cancel", headers=auth)
    assert again.status_code == 409


def test_auto_jobs_prefer_an_online_gpu_worker(
    client: FlaskClient, auth: dict[str, str], dataset: str, settings: Any
) -> None:
    from models.jobs.workers import WorkerRegistry

    parts = client.application.extensions["fitserve"]
    queues = parts.redis
    body = {"model": "m", "spec": spec(), "dataset": dataset}
    first = post_job(client, auth, body)
    assert first.status_code == 202 and first.json["queue"] == settings.queues.cpu
    assert (queues.llen(settings.queues.cpu), queues.llen(settings.queues.gpu)) == (1, 0)
    # A GPU worker's heartbeat, as a worker on a GPU host writes it.
    WorkerRegistry(parts.redis, settings.redis_prefix).beat(
        {"name": "fitserve-gpu0-1@host", "gpus": ["gpu:0"], "device": "gpu:0"}
    )
    on_gpu = post_job(client, auth, body)
    assert on_gpu.status_code == 202 and on_gpu.json["queue"] == settings.queues.gpu
    shown = client.get(f"/v1/jobs/{on_gpu.json['id']}", headers=auth).json
    assert shown["queue"] == settings.queues.gpu  # where it waits, for the user to see
    cpu_only = post_job(client, auth, {**body, "spec": spec(device="cpu")})
    assert cpu_only.status_code == 202 and cpu_only.json["queue"] == settings.queues.cpu
    assert (queues.llen(settings.queues.cpu), queues.llen(settings.queues.gpu)) == (2, 1)
    listed = client.get("/v1/workers", headers=auth).json["workers"]
    assert [worker["name"] for worker in listed] == ["fitserve-gpu0-1@host"]


def test_gpu_jobs_wait_for_a_gpu_worker(
    client: FlaskClient, auth: dict[str, str], dataset: str, settings: Any
) -> None:
    body = {"model": "m", "spec": spec(device="gpu"), "dataset": dataset}
    assert post_job(client, auth, body).status_code == 202
    queues = client.application.extensions["fitserve"].redis
    assert (queues.llen(settings.queues.cpu), queues.llen(settings.queues.gpu)) == (0, 1)
