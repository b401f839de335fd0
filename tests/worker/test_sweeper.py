"""Sweeper.sweep on the real Redis, with a real Celery app whose messages are
read back from the broker: the kombu Redis transport keeps each queue as a list
named after it, holding JSON messages whose headers name the task and whose
base64 body holds its arguments."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest
import redis
from celery import Celery

from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.records import JobRecord
from models.settings import Jobs, Settings
from models.storage.blobs import open_blobs
from models.storage.checkpoint_files import Checkpoint, CheckpointStore
from tests.worker.conftest import sent, wait_until_orphaned
from worker.celery_app import PREDICT_TASK, TRAIN_TASK, make_celery
from worker.queue import JobQueue
from worker.sweeper import Sweeper

LEASE_S = 1.0  # a sweep period (one redelivery per job) is then 2 s
LONG_LEASE_S = 30.0
GPU_WORKER: dict[str, Any] = {  # as a GPU host's worker beats it
    "name": "fitserve-gpu0-1@gpu-host",
    "gpus": ["gpu:0"],
    "device": "gpu:0",
}


def spec(device: str = "auto") -> dict[str, Any]:
    return {"fit": {"epochs": 2}, "device": device}


@pytest.fixture
def short_lease(settings: Settings) -> Settings:
    """The shared per-test settings (cleaned up by their fixture), with short leases."""
    return settings.model_copy(update={"jobs": Jobs(lease_s=LEASE_S)})


@pytest.fixture
def registry(short_lease: Settings, redis_client: redis.Redis) -> WorkerRegistry:
    return WorkerRegistry(redis_client, short_lease.redis_prefix)


@pytest.fixture
def checkpoints(short_lease: Settings) -> CheckpointStore:
    return CheckpointStore(open_blobs(short_lease))


def make_sweeper(
    app: Celery, settings: Settings, jobs: JobStore, registry: WorkerRegistry,
    checkpoints: CheckpointStore,
) -> Sweeper:  # fmt: skip
    """A worker's sweeper, as worker.main builds it."""
    queue = JobQueue(app, settings.queues, jobs, registry)
    return Sweeper(queue, checkpoints, settings.jobs.lease_s)


@pytest.fixture
def sweeper(
    app: Celery, short_lease: Settings, jobs: JobStore, registry: WorkerRegistry,
    checkpoints: CheckpointStore,
) -> Sweeper:  # fmt: skip
    return make_sweeper(app, short_lease, jobs, registry, checkpoints)


def orphaned_job(jobs: JobStore, device: str = "auto") -> str:
    """A running job whose worker died: its lease has run out."""
    job_id = str(jobs.create("train", "m", "d", spec=spec(device))["id"])
    assert jobs.claim(job_id, "dead-worker", "cpu", 0.05, max_attempts=3).owned
    wait_until_orphaned(jobs, job_id)
    return job_id


def test_a_lapsed_job_is_sent_again_once_per_period_whatever_the_sweepers(
    sweeper: Sweeper, short_lease: Settings, jobs: JobStore, registry: WorkerRegistry,
    checkpoints: CheckpointStore, redis_client: redis.Redis,
) -> None:  # fmt: skip
    """Every worker sweeps; a dead worker's job must still be sent once per
    period, not once per worker and sweep, or the queue fills with copies."""
    other_app = make_celery(short_lease)  # a second worker's sweeper
    try:
        other = make_sweeper(other_app, short_lease, jobs, registry, checkpoints)
        job_id = orphaned_job(jobs)
        assert sweeper.sweep() == [job_id]
        assert other.sweep() == []
        assert sweeper.sweep() == []
        cpu = short_lease.queues.cpu
        assert sent(redis_client, cpu) == [(TRAIN_TASK, [job_id])]
        assert sent(redis_client, short_lease.queues.gpu) == []
        assert jobs.get(job_id)["queue"] == cpu

        # Nobody claimed it: once the period is over, it is sent once more.
        deadline = time.monotonic() + 10
        while not (again := other.sweep()):
            assert time.monotonic() < deadline, "the job was never sent again"
            time.sleep(0.05)
        assert again == [job_id]
        assert sweeper.sweep() == []
        assert sent(redis_client, cpu) == [(TRAIN_TASK, [job_id])] * 2
    finally:
        other_app.close()

    # A delivery of either message takes the job over.
    assert jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, 3).outcome == "resumed"
    assert sweeper.sweep() == [] and jobs.orphans() == []


def test_a_lapsed_auto_job_goes_to_the_gpu_queue_while_a_gpu_worker_is_online(
    sweeper: Sweeper, short_lease: Settings, jobs: JobStore, registry: WorkerRegistry,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    """A redelivery is routed like a first delivery: by the workers online now."""
    registry.beat(GPU_WORKER)
    job_id = orphaned_job(jobs)
    assert sweeper.sweep() == [job_id]
    assert sent(redis_client, short_lease.queues.gpu) == [(TRAIN_TASK, [job_id])]
    assert sent(redis_client, short_lease.queues.cpu) == []
    assert jobs.stranded() == []  # it is running, not waiting: nothing to move


def test_a_job_whose_lease_is_held_is_left_alone(
    sweeper: Sweeper, short_lease: Settings, jobs: JobStore, redis_client: redis.Redis
) -> None:
    """A healthy running job must not be delivered to a second worker."""
    job_id = str(jobs.create("train", "m", "d", spec=spec())["id"])
    assert jobs.claim(job_id, "alive", "cpu", LONG_LEASE_S, 3).owned
    assert sweeper.sweep() == []
    assert sent(redis_client, short_lease.queues.cpu) == []
    assert sent(redis_client, short_lease.queues.gpu) == []
    record = jobs.get(job_id)
    assert record["state"] == "running" and record["worker"] == "alive"
    assert record["attempts"] == 1


def route_to_gpu_by_choice(jobs: JobStore, settings: Settings, job: JobRecord) -> str:
    """An `auto` job sent to the GPU queue while a GPU worker was online."""
    jobs.routed(job["id"], settings.queues.gpu, by_choice=True)
    return str(job["id"])


def test_stranded_auto_jobs_move_to_the_cpu_queue_when_no_gpu_worker_is_online(
    sweeper: Sweeper, short_lease: Settings, jobs: JobStore, redis_client: redis.Redis
) -> None:
    """With the GPU hosts gone, an `auto` job would wait forever on the GPU
    queue; a `gpu` job must keep waiting there."""
    training = route_to_gpu_by_choice(jobs, short_lease, jobs.create("train", "m", "d", spec()))
    prediction = route_to_gpu_by_choice(jobs, short_lease,
                                        jobs.create("predict", "m", "d", version=1))  # fmt: skip
    gpu_only = str(jobs.create("train", "m", "d", spec=spec("gpu"))["id"])
    jobs.routed(gpu_only, short_lease.queues.gpu, by_choice=False)

    assert sorted(sweeper.sweep()) == sorted([training, prediction])
    messages = sent(redis_client, short_lease.queues.cpu)
    assert sorted(messages) == sorted([(TRAIN_TASK, [training]), (PREDICT_TASK, [prediction])])
    assert sent(redis_client, short_lease.queues.gpu) == []  # nothing else was sent
    for job_id in (training, prediction):
        record = jobs.get(job_id)
        assert record["queue"] == short_lease.queues.cpu and record["state"] == "queued"
    assert jobs.get(gpu_only)["queue"] == short_lease.queues.gpu
    assert jobs.stranded() == []
    assert sweeper.sweep() == []  # moved once: no longer stranded
    assert len(sent(redis_client, short_lease.queues.cpu)) == 2


def test_stranded_auto_jobs_wait_while_a_gpu_worker_is_online(
    sweeper: Sweeper, short_lease: Settings, jobs: JobStore, registry: WorkerRegistry,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    """A GPU worker that is online will take the job: moving it would waste the GPU."""
    registry.beat(GPU_WORKER)
    job_id = route_to_gpu_by_choice(jobs, short_lease, jobs.create("train", "m", "d", spec()))
    assert sweeper.sweep() == []
    assert sent(redis_client, short_lease.queues.cpu) == []
    assert jobs.get(job_id)["queue"] == short_lease.queues.gpu
    assert jobs.stranded() == [job_id]

    registry.leave(GPU_WORKER["name"])  # and once it goes, the job moves
    assert sweeper.sweep() == [job_id]
    assert sent(redis_client, short_lease.queues.cpu) == [(TRAIN_TASK, [job_id])]


def a_checkpoint() -> Checkpoint:
    return Checkpoint(epoch=1, history={"loss": [0.5]}, trainable=[np.zeros(3, "float32")],
                      non_trainable=[], optimizer=[])  # fmt: skip


def test_checkpoints_of_finished_and_deleted_jobs_go_and_unfinished_ones_stay(
    sweeper: Sweeper, jobs: JobStore, checkpoints: CheckpointStore
) -> None:
    """A job cancelled or deleted while its worker was gone leaves a checkpoint
    nobody else removes; a running, orphaned or handed-back job still needs its own."""

    def job(state: str) -> str:
        job_id = str(jobs.create("train", "m", "d", spec=spec())["id"])
        if state != "queued":
            assert jobs.claim(job_id, "w1", "cpu", LONG_LEASE_S, 3).owned
        if state in ("succeeded", "failed", "cancelled"):
            assert jobs.transition(job_id, state, ("running",)) == "running"
        return job_id

    keep = {"running": job("running"), "queued": job("queued"), "orphaned": orphaned_job(jobs)}
    drop = {state: job(state) for state in ("succeeded", "failed", "cancelled")}
    drop["deleted"] = job("succeeded")
    jobs.delete(drop["deleted"])
    drop["never known"] = uuid.uuid4().hex
    for job_id in [*keep.values(), *drop.values()]:
        checkpoints.save(job_id, a_checkpoint())

    assert sweeper.sweep() == [keep["orphaned"]]  # redelivered, to resume from its checkpoint
    assert sorted(checkpoints.job_ids()) == sorted(keep.values())
    assert checkpoints.load(keep["orphaned"]) is not None


def test_a_queued_job_whose_message_was_lost_is_sent_again_and_a_waiting_one_is_not(
    app: Celery, settings: Settings, jobs: JobStore, registry: WorkerRegistry,
    checkpoints: CheckpointStore, redis_client: redis.Redis,
) -> None:  # fmt: skip
    """The API stopped between recording a job and sending it: no message
    would ever run it. A job whose message waits in a busy queue must not be
    sent again at every sweep, nor one whose lost message was sent again."""
    quick = settings.model_copy(update={"jobs": Jobs(lease_s=0.2)})  # a period is 0.4 s
    sweeper = make_sweeper(app, quick, jobs, registry, checkpoints)
    lost = str(jobs.create("train", "m", "d", spec=spec("cpu"))["id"])  # never sent
    waiting = jobs.create("train", "m", "d", spec=spec("cpu"))
    sweeper.queue.send(waiting)
    cpu = quick.queues.cpu

    deadline = time.monotonic() + 10
    while not (resent := sweeper.sweep()):  # once a period has gone by
        assert time.monotonic() < deadline, "the lost job was never sent"
        time.sleep(0.05)
    assert resent == [lost]
    assert jobs.get(lost)["queue"] == cpu
    periods = time.monotonic() + 3 * 4 * sweeper.interval_s
    while time.monotonic() < periods:  # both messages wait, so nothing more is sent
        assert sweeper.sweep() == []
        time.sleep(0.05)
    assert sorted(sent(redis_client, cpu)) == sorted([(TRAIN_TASK, [waiting["id"]]),
                                                      (TRAIN_TASK, [lost])])  # fmt: skip

    # Claimed (it started) or cancelled: no longer waiting for a message.
    assert jobs.claim(lost, "w1", "cpu", LONG_LEASE_S, 3).outcome == "started"
    jobs.request_cancel(waiting["id"])
    redis_client.delete(cpu)
    time.sleep(4 * sweeper.interval_s)
    assert sweeper.sweep() == []
    assert sent(redis_client, cpu) == []
