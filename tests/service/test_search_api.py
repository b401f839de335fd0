"""POST /v1/jobs with `search` or `fit.folds`: every trial is checked before a
job exists, and an accepted job's record lists its trials. No worker runs
here (tests/worker/test_search_jobs.py trains them)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.service.test_jobs_api import IRIS_LIKE, post_job, spec


@pytest.fixture
def dataset(client: FlaskClient, auth: dict[str, str]) -> str:
    response = client.post(
        "/v1/datasets", data=IRIS_LIKE, headers={**auth, "Content-Type": "text/csv"}
    )
    return str(response.json["id"])


SEARCH: dict[str, Any] = {
    "trials": 6,
    "method": "random",
    "seed": 1,
    "space": {
        "compile.optimizer.learning_rate": {"log_uniform": [0.0001, 0.1]},
        "seed": {"int": [0, 1000]},
    },
}


def search_job(model: str = "iris", **changes: Any) -> dict[str, Any]:
    search = {**SEARCH, **changes.pop("search", {})}
    return {"model": model, "spec": spec(**changes), "dataset": "", "search": search}


def refused(client: FlaskClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = post_job(client, auth, body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert client.get("/v1/jobs", headers=auth).json["jobs"] == [], "no job may exist"
    return dict(response.json["error"])


def locations(answer: dict[str, Any]) -> list[list[Any]]:
    return [detail["loc"] for detail in answer["details"]]


def test_an_accepted_search_lists_its_trials_queued_with_their_groups(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    body = search_job(
        fit={"epochs": 2, "batch_size": 5, "validation_split": 0.2},
        search={"space": {**SEARCH["space"], "layers.0.units": {"choice": [4, 8]}}},
    )
    response = post_job(client, auth, {**body, "dataset": dataset})
    assert response.status_code == 202, response.get_data(as_text=True)
    job = client.get(f"/v1/jobs/{response.json['id']}", headers=auth).json
    assert job["search"]["trials"] == 6 and job["best"] is None
    assert job["ranking"] == {"metric": "val_loss", "mode": "min"}
    assert [trial["index"] for trial in job["trials"]] == list(range(6))
    assert {trial["state"] for trial in job["trials"]} == {"queued"}
    # Trials with the same width share a group; the two widths are two groups.
    groups = {trial["params"]["layers.0.units"]: set() for trial in job["trials"]}
    for trial in job["trials"]:
        groups[trial["params"]["layers.0.units"]].add(trial["group"])
    assert all(len(found) == 1 for found in groups.values())
    assert len({group for found in groups.values() for group in found}) == len(groups)
    # Drawn again, the same trials: the worker trains exactly what was listed.
    again = post_job(client, auth, {**body, "dataset": dataset}).json
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in job["trials"]]


def test_a_path_that_names_no_spec_field_is_a_422_at_that_path(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    body = search_job(search={"space": {"compile.optimizer.learnig_rate": {"choice": [0.1]}}})
    answer = refused(client, auth, {**body, "dataset": dataset})
    assert locations(answer) == [["search", "space", "compile.optimizer.learnig_rate"]]
    assert "learning_rate" in answer["details"][0]["msg"]  # the likely meant field


def test_a_value_the_spec_refuses_is_a_422_at_that_path(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    body = search_job(search={"space": {"layers.0.units": {"choice": [8, -3]}}, "trials": 4})
    answer = refused(client, auth, {**body, "dataset": dataset})
    assert locations(answer) == [["search", "space", "layers.0.units"]]
    assert "-3" in answer["details"][0]["msg"]


def test_a_trial_that_does_not_fit_the_dataset_is_a_422_naming_the_trial(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    # The head's width is the class count: 3 in this dataset, so 4 does not fit.
    body = search_job(search={"space": {"layers.1.units": {"choice": [3, 4]}}, "method": "grid",
                              "trials": None})  # fmt: skip
    answer = refused(client, auth, {**body, "dataset": dataset})
    assert locations(answer) == [["search", "space", "layers.1.units"]]
    assert "Trial 1" in answer["message"] and "layers.1.units=4" in answer["message"]


def test_a_validation_metric_needs_held_out_rows(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    body = search_job(search={"metric": "val_accuracy"})
    answer = refused(client, auth, {**body, "dataset": dataset})
    assert locations(answer) == [["search", "metric"]]
    assert "validation_split" in answer["message"] and "folds" in answer["message"]


def test_a_search_takes_no_early_stopping(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    fit = {"epochs": 3, "batch_size": 5, "validation_split": 0.2,
           "early_stopping": {"monitor": "val_loss", "patience": 1}}  # fmt: skip
    answer = refused(client, auth, {**search_job(fit=fit), "dataset": dataset})
    assert locations(answer) == [["spec", "fit", "early_stopping"]]
    assert "halving" in answer["message"]


@pytest.mark.parametrize(
    ("fit", "message"),
    [
        ({"epochs": 2, "folds": 3, "validation_split": 0.2}, "validation_split"),
        ({"epochs": 2, "folds": 3, "early_stopping": {"monitor": "loss"}}, "early_stopping"),
        ({"epochs": 2, "folds": 1}, "greater than or equal to 2"),
        ({"epochs": 2, "folds": 11}, "less than or equal to 10"),
    ],
)
def test_folds_refuse_what_they_cannot_combine_with(
    client: FlaskClient, auth: dict[str, str], dataset: str, fit: dict[str, Any], message: str
) -> None:
    body = {"model": "iris", "spec": spec(fit=fit), "dataset": dataset}
    answer = refused(client, auth, body)
    assert locations(answer) == [["spec", "fit", "folds"]]
    assert message in answer["details"][0]["msg"]


def test_a_fold_job_is_one_trial_ranked_by_its_validation_loss(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    body = {"model": "iris", "spec": spec(fit={"epochs": 2, "folds": 3}), "dataset": dataset}
    response = post_job(client, auth, body)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.json
    assert job["search"] is None and job["ranking"] == {"metric": "val_loss", "mode": "min"}
    assert job["trials"] == [{"index": 0, "params": {}, "metrics": {}, "state": "queued",
                              "epochs": 0, "group": 0}]  # fmt: skip


def test_a_plain_job_has_no_trial_fields(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    job = post_job(client, auth, {"model": "iris", "spec": spec(), "dataset": dataset}).json
    assert "trials" not in job and "search" not in job


def test_a_search_s_trials_are_shown_with_their_rank(
    app: Flask, client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    body = search_job(fit={"epochs": 2, "batch_size": 5, "validation_split": 0.2},
                      search={"trials": 3})  # fmt: skip
    job_id = post_job(client, auth, {**body, "dataset": dataset}).json["id"]
    jobs = app.extensions["fitserve"].jobs
    trials = jobs.get(job_id)["trials"]
    for entry, (value, state) in zip(trials, [(0.5, "succeeded"), (None, "failed"),
                                              (0.25, "succeeded")], strict=True):  # fmt: skip
        entry.update(state=state, metrics={} if value is None else {"val_loss": value})
    jobs.update(job_id, trials=trials, state="succeeded")
    expected = [2, None, 1]
    shown = client.get(f"/v1/jobs/{job_id}", headers=auth).json
    assert [trial["rank"] for trial in shown["trials"]] == expected
    (listed,) = client.get("/v1/jobs", headers=auth).json["jobs"]
    assert [trial["rank"] for trial in listed["trials"]] == expected
    stream = client.get(f"/v1/jobs/{job_id}/events", headers=auth).get_data(as_text=True)
    snapshot = json.loads(stream.split("data: ", 1)[1].split("\n", 1)[0])
    assert [trial["rank"] for trial in snapshot["trials"]] == expected
    assert "rank" not in jobs.get(job_id)["trials"][0]  # shown, not stored
