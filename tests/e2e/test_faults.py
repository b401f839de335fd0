"""Workers die, messages arrive twice, a job kills its worker every time:
real worker processes, killed with SIGKILL, on the real Redis.

Jobs here train a wide network with a small batch, so an epoch takes most of
a second and a test can kill a worker in the middle of a job."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from celery import Celery

from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.storage.blobs import open_blobs
from models.storage.checkpoint_files import CheckpointStore
from models.training.spec import ModelSpec
from service.client import ApiError, Client
from tests.conftest import API_KEY
from tests.e2e.cluster import LEASE_S, SLOW_X, Cluster, running_cluster, slow_spec
from worker.celery_app import TRAIN_TASK

X = SLOW_X
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("faults")
    (folder / "tmp").mkdir()
    with running_cluster(folder, FITSERVE_JOBS__MAX_ATTEMPTS=str(MAX_ATTEMPTS),
                         TMPDIR=str(folder / "tmp")) as cluster:  # fmt: skip
        yield cluster


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, with every worker a test starts stopped after it."""
    yield cluster
    cluster.stop_workers()


def spec(**fit: Any) -> dict[str, Any]:
    return slow_spec(**fit)


def checkpoints(cluster: Cluster) -> list[str]:
    return CheckpointStore(open_blobs(cluster.settings)).job_ids()


def test_a_killed_worker_s_job_resumes_and_publishes_once(workers: Cluster) -> None:
    first = workers.start_worker()
    job = workers.submit("resumed", spec(), workers.dataset)
    running = workers.wait_for(job["id"], lambda job: (job["progress"]["epoch"] or 0) >= 3)
    workers.kill(first)
    at_death = workers.job(job["id"])
    assert at_death["state"] == "running"  # nobody has noticed yet

    workers.start_worker(wait=False)
    resumed = workers.wait_until_final(job["id"])
    assert resumed["state"] == "succeeded", resumed["error"]
    assert resumed["attempts"] == 2
    (restart,) = resumed["restarts"]
    assert restart["lost_worker"] == running["worker"]
    # From the last checkpoint on disk: the epoch the record showed when the
    # worker died, or one or two before it when the worker died while that
    # epoch's checkpoint was still being written (a thread writes it while
    # training goes on; a newer one replaces any waiting for its turn).
    assert at_death["progress"]["epoch"] - 2 <= restart["resumed_from_epoch"]
    assert restart["resumed_from_epoch"] <= at_death["progress"]["epoch"]
    assert resumed["resumed_from_epoch"] == restart["resumed_from_epoch"] >= 2
    assert len(resumed["history"]["loss"]) == 10
    assert workers.published("resumed") == [1]
    deadline = time.monotonic() + 30
    while checkpoints(workers):  # dropped once the job's state is recorded
        assert time.monotonic() < deadline
        time.sleep(0.05)

    # The same job never interrupted: resuming restored the weights, the
    # optimizer and the shuffle, so the curves are the same numbers.
    whole = workers.wait_until_final(workers.submit("uninterrupted", spec(), workers.dataset)["id"])
    np.testing.assert_allclose(resumed["history"]["loss"], whole["history"]["loss"], rtol=1e-5)


def test_a_duplicate_delivery_trains_once(workers: Cluster) -> None:
    workers.start_workers(2)
    job = workers.submit("delivered-twice", spec(epochs=4), workers.dataset)
    workers.wait_for(job["id"], lambda job: job["state"] == "running")
    app = Celery(broker=workers.settings.redis_url, set_as_current=False)
    app.send_task(TRAIN_TASK, args=[job["id"]], queue=workers.settings.queues.cpu)

    finished = workers.wait_until_final(job["id"])
    assert finished["state"] == "succeeded", finished["error"]
    assert finished["attempts"] == 1 and finished["restarts"] == []
    assert workers.published("delivered-twice") == [1]
    deadline = time.monotonic() + 30
    while "another worker holds it" not in workers.worker_logs():
        assert time.monotonic() < deadline, workers.worker_logs()[-3000:]
        time.sleep(0.1)


def test_auto_jobs_waiting_for_a_gpu_worker_that_left_train_on_a_cpu_worker(
    workers: Cluster,
) -> None:
    """A GPU host goes away while `auto` jobs wait on the GPU queue: a sweep
    sends them to the CPU queue. `gpu` jobs keep waiting for a GPU."""
    workers.start_worker()  # a CPU host's worker: it consumes the CPU queue only
    registry = WorkerRegistry(redis.Redis.from_url(workers.settings.redis_url),
                              workers.settings.redis_prefix)  # fmt: skip
    gpu_worker: dict[str, Any] = {
        "name": "fitserve-gpu0-1@gpu-host",
        "gpus": ["gpu:0"],
        "device": "gpu:0",
    }
    registry.beat(gpu_worker)  # as a GPU host's worker writes it
    auto = workers.submit("auto-after-gpu-left", spec(epochs=1), workers.dataset)
    only_gpu = workers.submit("gpu-only", {**spec(epochs=1), "device": "gpu"}, workers.dataset)
    assert auto["queue"] == only_gpu["queue"] == workers.settings.queues.gpu
    time.sleep(2 * LEASE_S)  # sweeps go by; the GPU worker is online: nothing moves
    assert workers.job(auto["id"])["state"] == "queued"

    registry.leave(gpu_worker["name"])  # its host went away
    finished = workers.wait_until_final(auto["id"], timeout_s=60)
    assert finished["state"] == "succeeded", finished["error"]
    assert finished["device"] == "cpu" and finished["queue"] == workers.settings.queues.cpu
    waiting = workers.job(only_gpu["id"])
    assert waiting["state"] == "queued" and waiting["queue"] == workers.settings.queues.gpu
    assert "no GPU worker is online any more" in workers.worker_logs()
    workers.http.post(workers.url(f"/v1/jobs/{only_gpu['id']}:cancel"))


def test_a_job_that_kills_its_worker_every_time_fails_after_bounded_deliveries(
    workers: Cluster,
) -> None:
    job = workers.submit("poison", spec(epochs=50), workers.dataset)
    lost = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        worker = workers.start_worker(wait=False)  # it takes the job before it would answer
        # It crashes each time it runs: here, the test is what kills it.
        taken = workers.wait_for(job["id"], lambda job, n=attempt: job["attempts"] == n
                                 and len(job["restarts"]) == n - 1)  # fmt: skip
        lost.append(taken["worker"])
        workers.kill(worker)

    survivor = workers.start_worker(wait=False)
    failed = workers.wait_until_final(job["id"])
    assert failed["state"] == "failed"
    assert failed["attempts"] == MAX_ATTEMPTS
    assert failed["error"]["code"] == "worker_lost"
    assert f"after {MAX_ATTEMPTS} deliveries" in failed["error"]["message"]
    assert lost[-1] in failed["error"]["message"]
    assert [restart["attempt"] for restart in failed["restarts"]] == [2, 3]
    assert workers.versions("poison") == []

    # The worker that gave up on it goes on serving other jobs.
    other = workers.wait_until_final(workers.submit("after-poison", spec(epochs=1),
                                                    workers.dataset)["id"])  # fmt: skip
    assert other["state"] == "succeeded", other["error"]
    assert survivor.process.poll() is None
    assert "poison" not in [job_id for job_id in checkpoints(workers)]


def test_a_cancel_sent_while_the_worker_is_dead_holds_after_restart(workers: Cluster) -> None:
    worker = workers.start_worker()
    job = workers.submit("cancelled-in-between", spec(epochs=50), workers.dataset)
    workers.wait_for(job["id"], lambda job: (job["progress"]["epoch"] or 0) >= 1)
    workers.kill(worker)
    asked = workers.http.post(workers.url(f"/v1/jobs/{job['id']}:cancel"))
    assert asked.status_code == 200, asked.text
    # The dead worker's lease has not lapsed yet: the job still looks owned.
    assert asked.json()["state"] == "running"

    workers.start_worker(wait=False)
    cancelled = workers.wait_until_final(job["id"])
    assert cancelled["state"] == "cancelled"
    assert cancelled["attempts"] == 1  # it never ran again
    assert workers.versions("cancelled-in-between") == []
    deadline = time.monotonic() + 30
    while job["id"] in checkpoints(workers):  # the sweeper forgets its checkpoint
        assert time.monotonic() < deadline
        time.sleep(0.1)


def big_spec() -> dict[str, Any]:
    """A big model: it takes a while to write, long enough to catch its worker
    mid-write."""
    return {**spec(epochs=2, batch_size=256),
            "layers": [{"type": "dense", "units": 2048, "activation": "relu"},
                       {"type": "dense", "units": 2048, "activation": "relu"},
                       {"type": "dense", "units": 1}]}  # fmt: skip


def test_a_worker_killed_while_publishing_leaves_no_partial_version(workers: Cluster) -> None:
    worker = workers.start_worker()
    job = workers.submit("killed-publishing", big_spec(), workers.dataset)
    # The worker's temporary folder (TMPDIR): where a version is saved before
    # it goes into the store.
    staging = _wait_for_staging(Path(workers.environment["TMPDIR"]))
    workers.kill(worker)

    assert staging.exists()  # the half-written model, left behind
    assert workers.versions("killed-publishing") == []
    assert workers.http.get(workers.url("/v1/models/killed-publishing")).status_code == 404
    workers.start_worker(wait=False)
    finished = workers.wait_until_final(job["id"])
    assert finished["state"] == "succeeded", finished["error"]
    # It resumed after its last epoch: no epoch ran twice.
    assert finished["restarts"][0]["resumed_from_epoch"] == 2
    assert len(finished["history"]["loss"]) == 2
    assert workers.published("killed-publishing") == [1]
    # The store holds that one version, whole, and the job's claim on it.
    store = set(open_blobs(workers.settings).keys("models/killed-publishing/"))
    assert store == {
        f"models/killed-publishing/{name}"
        for name in ("1/claim.json", "1/model.keras", "1/manifest.json", f"jobs/{job['id']}")
    }
    predicted = workers.http.post(workers.url("/v1/models/killed-publishing:predict"),
                                  json={"instances": X[:3].tolist()})  # fmt: skip
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == 3


def _wait_for_staging(folder: Path, timeout_s: float = 120) -> Path:
    """A new staging folder of a version being written: not one an earlier
    test's killed worker left behind."""
    earlier = set(_staging(folder))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if new := set(_staging(folder)) - earlier:
            return new.pop()
        time.sleep(0.001)
    raise AssertionError(f"no version was being written under {folder}")


def _staging(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return [Path(entry.path) for entry in entries if entry.name.startswith("fitserve-publish-")]


def test_a_worker_stalled_past_its_lease_publishes_nothing_and_changes_nothing(
    workers: Cluster,
) -> None:
    """A worker stops (SIGSTOP: swapped out, a VM paused) while it writes its
    model; its lease lapses and the other worker takes the job over, resumes
    it after its last epoch, publishes and finishes it. Then the first one
    goes on (SIGCONT) from where it stopped: it must publish no second version
    and leave the job as the other worker finished it."""
    both = workers.start_workers(2)
    job = workers.submit("stalled", big_spec(), workers.dataset)
    _wait_for_staging(Path(workers.environment["TMPDIR"]))
    holder = workers.job(job["id"])["worker"]
    stalled = next(worker for worker in both if f"-{worker.process.pid}@" in holder)
    os.killpg(stalled.process.pid, signal.SIGSTOP)
    try:
        finished = workers.wait_until_final(job["id"])
        assert finished["state"] == "succeeded", finished["error"]
        assert finished["worker"] != holder and finished["attempts"] == 2
        assert workers.published("stalled") == [1]
    finally:
        os.killpg(stalled.process.pid, signal.SIGCONT)

    registry = WorkerRegistry(redis.Redis.from_url(workers.settings.redis_url),
                              workers.settings.redis_prefix)  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(worker["name"] == holder and worker["jobs_done"] == 1
                  for worker in registry.online()):  # fmt: skip
        assert time.monotonic() < deadline, stalled.log_tail()
        time.sleep(0.1)  # the stalled worker's delivery has ended
    assert workers.job(job["id"]) == finished
    assert workers.versions("stalled") == [1]
    store = set(open_blobs(workers.settings).keys("models/stalled/"))
    names = ("1/claim.json", "1/model.keras", "1/manifest.json", f"jobs/{job['id']}")
    assert store == {f"models/stalled/{name}" for name in names}
    assert "another delivery took it over" in stalled.log_path.read_text()


def test_a_job_recorded_but_never_sent_is_sent_by_a_sweep_and_runs(workers: Cluster) -> None:
    """The API stopped between recording a job and sending its message: a
    worker's sweep finds the job queued with no message anywhere, and sends it."""
    client = redis.Redis.from_url(workers.settings.redis_url)
    try:
        jobs = JobStore(client, workers.settings.redis_prefix)
        body = ModelSpec.model_validate(spec(epochs=1)).model_dump(mode="json")
        job = jobs.create("train", "never-sent", workers.dataset, spec=body)
    finally:
        client.close()
    workers.start_worker(wait=False)
    finished = workers.wait_until_final(job["id"], timeout_s=60)
    assert finished["state"] == "succeeded", finished["error"]
    assert finished["attempts"] == 1 and finished["queue"] == workers.settings.queues.cpu
    assert workers.published("never-sent") == [1]
    assert "its message was lost; sent again" in workers.worker_logs()


def test_sigterm_hands_the_running_job_back_to_its_queue(workers: Cluster) -> None:
    stopping = workers.start_worker()
    job = workers.submit("handed-back", spec(epochs=12), workers.dataset)
    workers.wait_for(job["id"], lambda job: (job["progress"]["epoch"] or 0) >= 2)
    assert stopping.stop() == 0  # a warm shutdown: it did not wait out the job
    handed_back = workers.job(job["id"])
    assert handed_back["state"] == "queued"
    assert job["id"] in checkpoints(workers)

    workers.start_worker(wait=False)
    finished = workers.wait_until_final(job["id"])
    assert finished["state"] == "succeeded", finished["error"]
    (restart,) = finished["restarts"]
    # The worker saved the epoch it stopped after: nothing ran twice.
    assert restart["resumed_from_epoch"] == handed_back["progress"]["epoch"]
    assert len(finished["history"]["loss"]) == 12
    assert workers.published("handed-back") == [1]


def test_sigterm_lets_the_api_finish_requests_in_flight(workers: Cluster) -> None:
    workers.start_worker()
    job = workers.submit("watched-through-shutdown", spec(epochs=6), workers.dataset)
    workers.wait_for(job["id"], lambda job: (job["progress"]["epoch"] or 0) >= 1)
    client = Client(workers.base_url, API_KEY)
    events = client.events(job["id"])
    assert next(events).name == "snapshot"  # the stream is open
    assert workers.api is not None
    workers.api.process.send_signal(signal.SIGTERM)
    rest = list(events)  # the open stream runs to the job's end
    assert rest[-1].name == "state" and rest[-1].data["state"] == "succeeded"
    assert workers.api.process.wait(60) == 0
    with pytest.raises(ApiError):  # and no new request is taken
        client.json("GET", "/healthz")
    workers.start_api()  # for the tests after this one
