"""`GET /v1/jobs/{id}/events`: a job's epochs and states as Server-Sent Events."""

from __future__ import annotations

import numpy as np
import pytest

from service.client import ApiError, Client, parse_events
from tests.conftest import API_KEY
from tests.e2e.conftest import Live

X = np.random.default_rng(5).normal(size=(64, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "sigmoid"},
    ],  # fmt: skip
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
    "fit": {"epochs": 40, "batch_size": 8, "validation_split": 0.25},
    "seed": 1,
}


def test_a_job_streams_every_epoch_then_its_end(live: Live) -> None:
    client = Client(live.base_url, API_KEY)
    body = {"x": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()}
    dataset = client.json("POST", "/v1/datasets", json=body)
    job = client.submit("streamed", SPEC, dataset["id"])
    events = list(client.events(job["id"]))

    assert events[0].name == "snapshot" and events[0].data["id"] == job["id"]
    seen = len(events[0].data["history"].get("loss", []))
    epochs = [event for event in events if event.name == "epoch"]
    # Every epoch after the snapshot, once each, in order, with its logs.
    assert [event.data["epoch"] for event in epochs] == list(range(seen + 1, 41))
    assert [event.id for event in epochs] == [str(n) for n in range(seen + 1, 41)]
    for event in epochs:
        assert event.data["epochs"] == 40
        assert set(event.data["logs"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    states = [event.data["state"] for event in events if event.name == "state"]
    assert states[-1] == "succeeded" and events[-1].name == "state"
    final = live.http.get(live.url(f"/v1/jobs/{job['id']}")).json()
    if epochs:
        assert epochs[-1].data["logs"]["loss"] == final["history"]["loss"][-1]

    # A finished job's stream is its snapshot, and it ends at once.
    (again,) = client.events(job["id"])
    assert again.name == "snapshot" and again.data["state"] == "succeeded"


def test_events_of_an_unknown_job_or_without_a_key(live: Live) -> None:
    with pytest.raises(ApiError) as missing:
        list(Client(live.base_url, API_KEY).events("0" * 32))
    assert missing.value.status == 404
    with pytest.raises(ApiError) as anonymous:
        list(Client(live.base_url, "").events("0" * 32))
    assert anonymous.value.status == 401


def test_parse_events_follows_the_format() -> None:
    lines = ["event: epoch", "id: 3", 'data: {"epoch": 3}', "", ": keep-alive", "",
             'data: {"a":', "data: 1}", ""]  # fmt: skip
    parsed = list(parse_events(iter(lines)))
    assert [(event.name, event.id, event.data) for event in parsed] == [
        ("epoch", "3", {"epoch": 3}), ("message", None, {"a": 1})]  # fmt: skip


def test_a_search_streams_every_trial_s_epochs(live: Live) -> None:
    client = Client(live.base_url, API_KEY)
    body = {"x": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()}
    dataset = client.json("POST", "/v1/datasets", json=body)
    search = {"method": "grid", "space": {"seed": {"choice": [1, 2, 3]}}}
    body = {"model": "streamed-search", "spec": SPEC, "dataset": dataset["id"], "search": search}
    job = client.json("POST", "/v1/jobs", json=body)
    events = list(client.events(job["id"]))
    final = live.http.get(live.url(f"/v1/jobs/{job['id']}")).json()
    assert final["state"] == "succeeded", final["error"]
    seen = len(events[0].data["history"].get("epoch", []))
    epochs = [event for event in events if event.name == "epoch"]
    assert [event.data["epoch"] for event in epochs] == list(range(seen + 1, 41))
    for event in epochs:  # one entry per epoch of the group: every trial's logs in it
        logs = event.data["logs"]
        assert logs["group"] == 0 and logs["epoch"] == event.data["epoch"]
        assert {f"{trial}:val_loss" for trial in range(3)} <= set(logs)
    if epochs:
        assert epochs[-1].data["logs"]["2:loss"] == final["history"]["2:loss"][-1]
