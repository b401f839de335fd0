"""JobQueue, the one way a job reaches a worker: which queue each kind and
device of job goes to, what its record says, and a broker that refuses."""

from __future__ import annotations

import time
from typing import Any

import kombu.exceptions
import pytest
import redis
from celery import Celery

from models.errors import NotFound
from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.settings import Settings
from tests.worker.conftest import sent
from worker.celery_app import PREDICT_TASK, TRAIN_TASK, make_celery
from worker.queue import JobQueue


@pytest.fixture
def queue(app: Celery, settings: Settings, jobs: JobStore, redis_client: redis.Redis) -> JobQueue:
    return JobQueue(app, settings.queues, jobs, WorkerRegistry(redis_client, settings.redis_prefix))


def train_spec(device: str) -> dict[str, Any]:
    return {"fit": {"epochs": 1}, "device": device}


@pytest.mark.parametrize(
    ("device", "gpu_online", "expected", "by_choice"),
    [
        ("cpu", True, "cpu", False),
        ("gpu", False, "gpu", False),  # waits for a GPU worker
        ("auto", True, "gpu", True),
        ("auto", False, "cpu", False),
    ],
)
def test_a_training_job_goes_where_its_device_and_the_online_workers_say(
    queue: JobQueue, jobs: JobStore, settings: Settings, redis_client: redis.Redis,
    device: str, gpu_online: bool, expected: str, by_choice: bool,
) -> None:  # fmt: skip
    job = jobs.create("train", "m", "d" * 24, spec=train_spec(device))
    name = getattr(settings.queues, expected)
    assert queue.send(job, gpu_online=gpu_online) == name
    assert sent(redis_client, name) == [(TRAIN_TASK, [job["id"]])]
    assert jobs.get(job["id"])["queue"] == name
    assert (job["id"] in jobs.stranded()) is by_choice  # the sweeper may move it later


def test_a_prediction_job_takes_a_gpu_when_one_is_online(
    queue: JobQueue, jobs: JobStore, settings: Settings, redis_client: redis.Redis
) -> None:
    job = jobs.create("predict", "m", "d" * 24, version=1)
    assert queue.send(job, gpu_online=True) == settings.queues.gpu
    assert queue.send(job, gpu_online=False) == settings.queues.cpu
    assert sent(redis_client, settings.queues.cpu) == [(PREDICT_TASK, [job["id"]])]


def test_without_a_word_on_the_gpus_the_registry_is_asked(
    queue: JobQueue, jobs: JobStore, settings: Settings
) -> None:
    job = jobs.create("train", "m", "d" * 24, spec=train_spec("auto"))
    assert queue.send(job) == settings.queues.cpu
    queue.workers.beat({"name": "gpu-worker", "gpus": ["gpu:0"]})
    assert queue.send(job) == settings.queues.gpu


def test_a_job_the_broker_refuses_is_deleted_so_no_acknowledged_job_is_lost(
    settings: Settings, jobs: JobStore, redis_client: redis.Redis
) -> None:
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    refusing = make_celery(unreachable)
    refusing.conf.broker_connection_retry = False
    refusing.conf.broker_connection_max_retries = 0
    refusing.conf.broker_transport_options = {"max_retries": 0}
    queue = JobQueue(refusing, settings.queues, jobs,
                     WorkerRegistry(redis_client, settings.redis_prefix))  # fmt: skip
    job = jobs.create("train", "m", "d" * 24, spec=train_spec("cpu"))
    with pytest.raises(kombu.exceptions.OperationalError):  # the API answers it with a 503
        queue.submit(job)
    with pytest.raises(NotFound):
        jobs.get(job["id"])
    refusing.close()


def test_held_finds_a_message_on_its_queue_or_recently_in_a_workers_hands(
    queue: JobQueue, app: Celery, jobs: JobStore, settings: Settings
) -> None:
    """What the sweeper asks before it sends a queued job again: a message
    waiting, or taken by a worker lately and not acknowledged (it runs the job,
    or is about to claim it), holds the job; one taken long ago, by a worker
    that never claimed the job, does not (that worker died)."""
    job = jobs.create("train", "m", "d" * 24, spec=train_spec("cpu"))
    other = jobs.create("train", "m", "d" * 24, spec=train_spec("cpu"))
    cpu = settings.queues.cpu
    ours = {job["id"], other["id"]}  # the broker's Redis holds other tests' messages too

    def held(delivered_after: float, queues: tuple[str, ...] = (cpu,)) -> set[str]:
        return queue.held(queues, delivered_after) & ours

    assert held(time.time()) == set()
    queue.send(job, gpu_online=False)
    queue.send(other, gpu_online=False)
    assert held(time.time()) == ours
    assert held(time.time(), (settings.queues.gpu,)) == set()

    with app.connection_for_read() as connection:
        worker = connection.SimpleQueue(cpu)
        taken = worker.get(timeout=10)  # the oldest: `job`'s; not acknowledged
        assert taken.headers["task"] == TRAIN_TASK
        assert held(time.time() - 60) == ours
        assert held(time.time() + 60) == {other["id"]}
        taken.ack()
        worker.close()
    assert held(time.time() - 60) == {other["id"]}
