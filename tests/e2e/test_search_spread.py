"""A search's groups spread over real worker processes: each group is a job
of its own, sent as a Celery group; the search's worker trains what nobody
took and publishes the best. Workers killed mid-search (SIGKILL) lose
nothing but time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import pytest

from models.storage.blobs import open_blobs
from tests.e2e.cluster import Cluster, running_cluster, slow_spec

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="trials train side by side on JAX only"
)

# Two widths: two groups, each two trials (two learning rates) side by side.
SEARCH = {
    "method": "grid",
    "space": {
        "layers.0.units": {"choice": [1024, 512]},
        "compile.optimizer.learning_rate": {"choice": [0.001, 0.0003]},
    },
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("spread")) as cluster:
        yield cluster


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    cluster.stop_workers()


def submit_search(cluster: Cluster, model: str, epochs: int) -> dict[str, Any]:
    body = {"model": model, "spec": slow_spec(epochs=epochs, validation_split=0.25),
            "dataset": cluster.dataset, "search": SEARCH}  # fmt: skip
    response = cluster.http.post(cluster.url("/v1/jobs"), json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def groups_running(cluster: Cluster, search_id: str) -> list[dict[str, Any]]:
    """The search's group jobs once both are running."""
    search = cluster.wait_for(search_id, lambda job: len(job.get("groups") or []) == 2)
    ids = search["groups"]
    cluster.wait_for(ids[1], lambda job: job["state"] == "running")
    cluster.wait_for(ids[0], lambda job: job["state"] == "running")
    return [cluster.job(job_id) for job_id in ids]


def check_published_winner(cluster: Cluster, finished: dict[str, Any], model: str) -> None:
    assert finished["state"] == "succeeded", finished["error"]
    assert [trial["state"] for trial in finished["trials"]] == ["succeeded"] * 4
    best = min(finished["trials"], key=lambda trial: trial["metrics"]["val_loss"])
    assert finished["best"]["index"] == best["index"]
    assert cluster.published(model) == [1]
    metadata = cluster.http.get(cluster.url(f"/v1/models/{model}/versions/1/metadata")).json()
    assert metadata["metadata"]["search"]["params"] == best["params"]
    # Every trial's curve reached the search's history, group after group.
    assert all(len(finished["history"][f"{index}:val_loss"]) >= 1 for index in range(4))
    # The group jobs' models waited in the store for the publish, and are gone.
    assert list(open_blobs(cluster.settings).keys(f"searches/{finished['id']}/")) == []


def test_two_workers_train_a_search_s_groups_side_by_side(workers: Cluster) -> None:
    workers.start_workers(2)
    search = submit_search(workers, "spread", epochs=3)
    groups = groups_running(workers, search["id"])
    # Both at once, each on its own worker.
    assert len({group["worker"] for group in groups}) == 2
    assert {group["parent"] for group in groups} == {search["id"]}
    finished = workers.wait_until_final(search["id"])
    check_published_winner(workers, finished, "spread")
    for group_id in finished["groups"]:
        group = workers.job(group_id)
        assert group["state"] == "succeeded" and group["attempts"] == 1


def test_a_search_whose_worker_is_killed_finishes_on_another(workers: Cluster) -> None:
    workers.start_workers(2)
    search = submit_search(workers, "killed-search", epochs=6)
    groups = groups_running(workers, search["id"])
    coordinator = workers.job(search["id"])["worker"]
    # The group the search's own worker trains: killed two epochs in, it goes on from there.
    (held,) = [group["id"] for group in groups if group["worker"] == coordinator]
    workers.wait_for(held, lambda job: (job["progress"]["epoch"] or 0) >= 2)
    victim = next(worker for worker in workers.workers
                  if f"-{worker.process.pid}@" in coordinator)  # fmt: skip
    workers.kill(victim)
    workers.start_worker(wait=False)
    finished = workers.wait_until_final(search["id"], timeout_s=240)
    check_published_winner(workers, finished, "killed-search")
    assert finished["attempts"] == 2  # the search was delivered again
    attempts = sorted(workers.job(group_id)["attempts"] for group_id in finished["groups"])
    assert attempts == [1, 2]  # the group the dead worker held ran again; the other once
    resumed = workers.job(held)
    (restart,) = resumed["restarts"]
    assert restart["resumed_from_epoch"] >= 1  # from its checkpoint, not from the start
    assert resumed["history"]["epoch"] == list(range(1, 7))  # each epoch once


def test_a_cancelled_search_cancels_its_groups_and_publishes_nothing(workers: Cluster) -> None:
    workers.start_worker()
    search = submit_search(workers, "cancelled-search", epochs=6)
    running = workers.wait_for(search["id"], lambda job: len(job.get("groups") or []) == 2)
    workers.wait_for(running["groups"][0], lambda job: (job["progress"]["epoch"] or 0) >= 1)
    answer = workers.http.post(workers.url(f"/v1/jobs/{search['id']}:cancel"))
    assert answer.status_code == 200, answer.text
    finished = workers.wait_until_final(search["id"])
    assert finished["state"] == "cancelled"
    for group_id in finished["groups"]:
        assert workers.wait_until_final(group_id)["state"] == "cancelled"
    assert workers.versions("cancelled-search") == []
    assert list(open_blobs(workers.settings).keys(f"searches/{search['id']}/")) == []
