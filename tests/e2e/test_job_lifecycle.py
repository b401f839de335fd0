"""Cancelling and failing jobs on a real worker: the states API.md promises,
and no model version from a job that did not succeed."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.e2e.conftest import Live

SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 5, "batch_size": 4},
    "seed": 1,
}


def samples(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 3))


def upload(live: Live, rows: int = 64, seed: int = 0) -> str:
    x = samples(rows, seed)
    body = {"x": x.tolist(), "y": (x.sum(axis=1) * 2.0).tolist()}
    response = live.http.post(live.url("/v1/datasets"), json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def submit(live: Live, model: str, dataset: str, epochs: int) -> dict[str, Any]:
    spec = {**SPEC, "fit": {**SPEC["fit"], "epochs": epochs}}
    response = live.http.post(
        live.url("/v1/jobs"), json={"model": model, "spec": spec, "dataset": dataset}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def cancel(live: Live, job_id: str) -> dict[str, Any]:
    response = live.http.post(live.url(f"/v1/jobs/{job_id}:cancel"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_cancel_running_and_queued_jobs_and_a_failing_job(live: Live) -> None:
    dataset = upload(live)
    doomed_dataset = upload(live, seed=1)
    # The worker runs one job at a time: while `long` runs, the others wait in the queue.
    long = submit(live, "cancel-running", dataset, epochs=5000)
    live.wait_for_job(long["id"], until=("running",))
    queued = submit(live, "cancel-queued", dataset, epochs=5)
    failing = submit(live, "loses-its-data", doomed_dataset, epochs=5)
    assert live.http.delete(live.url(f"/v1/datasets/{doomed_dataset}")).status_code == 204

    assert cancel(live, queued["id"])["state"] == "cancelled"
    (worker,) = live.http.get(live.url("/v1/workers")).json()["workers"]
    assert worker["current_job"] == long["id"]
    assert worker["device"] == "cpu" and worker["gpus"] == []
    assert worker["queue"] == live.settings.queues.cpu
    _wait_for_epoch(live, long["id"], 1)
    cancel(live, long["id"])
    stopped = live.wait_for_job(long["id"])
    failed = live.wait_for_job(failing["id"])

    assert stopped["state"] == "cancelled"
    assert 1 <= stopped["progress"]["epoch"] < 5000
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "not_found"
    assert doomed_dataset in failed["error"]["message"]
    # The queue is first in, first out: the worker took the cancelled job's
    # task before the failing one's, and must have skipped it.
    never_started = live.http.get(live.url(f"/v1/jobs/{queued['id']}")).json()
    assert never_started["state"] == "cancelled"
    assert never_started["started_at"] is None and never_started["attempts"] == 0
    for model in ("cancel-running", "cancel-queued", "loses-its-data"):
        assert live.http.get(live.url(f"/v1/models/{model}")).status_code == 404


def test_cancelling_a_finished_job_is_a_conflict(live: Live) -> None:
    job = submit(live, "finishes", upload(live, seed=2), epochs=2)
    assert live.wait_for_job(job["id"])["state"] == "succeeded"
    response = live.http.post(live.url(f"/v1/jobs/{job['id']}:cancel"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_versions_count_up_and_list(live: Live) -> None:
    dataset = upload(live, seed=3)
    for expected_version in (1, 2):
        job = live.wait_for_job(submit(live, "twice", dataset, epochs=2)["id"])
        assert job["result"]["version"] == expected_version
    # Keras is imported once per worker process: every job ran in the same one
    # (the worker's name carries its pid), none in a forked child. This test's
    # jobs only: others on this service store records of workers they pretend to be.
    listed = live.http.get(live.url("/v1/jobs?model=twice")).json()["jobs"]
    assert len(listed) == 2
    workers = {job["worker"] for job in listed}
    assert len(workers - {None}) == 1, workers
    listing = live.http.get(live.url("/v1/models")).json()["models"]
    twice = next(model for model in listing if model["name"] == "twice")
    assert twice == {"name": "twice", "latest_version": 2, "versions": [1, 2], "task": "regression",
                     "labels": {}}  # fmt: skip
    status = live.http.get(live.url("/v1/models/twice/versions/1")).json()
    assert status["model_version_status"][0]["version"] == "1"
    jobs = live.http.get(live.url("/v1/jobs"), params={"model": "twice"}).json()["jobs"]
    assert [job["result"]["version"] for job in jobs] == [2, 1]  # newest first


def _wait_for_epoch(live: Live, job_id: str, epoch: int) -> None:
    while True:
        job = live.http.get(live.url(f"/v1/jobs/{job_id}")).json()
        if job["progress"]["epoch"] >= epoch or job["state"] != "running":
            return


def test_a_fold_job_trains_side_by_side_on_jax_and_says_why_it_cannot_elsewhere(
    live: Live,
) -> None:
    import keras

    spec = {**SPEC, "fit": {**SPEC["fit"], "epochs": 2, "folds": 3}}
    body = {"model": "folded", "spec": spec, "dataset": upload(live)}
    response = live.http.post(live.url("/v1/jobs"), json=body)
    assert response.status_code == 202, response.text
    job = live.wait_for_job(response.json()["id"])
    if keras.backend.backend() == "jax":
        assert job["state"] == "succeeded", job["error"]
        assert len(job["trials"][0]["folds"]["val_loss"]["values"]) == 3
    else:  # the TensorFlow lane of `make test`
        assert job["state"] == "failed"
        assert job["error"]["code"] == "search_failed" and "JAX" in job["error"]["message"]
