"""The one way a job reaches a worker: `JobQueue.send`, built once per process
(the API's, each worker's) and used by the routes, the hand-back on SIGTERM
and the sweeper alike.

GPU hosts consume the `gpu` queue and CPU hosts the `cpu` queue. A `gpu` job
waits for a GPU worker; an `auto` one goes to the GPU queue when a GPU worker
is online, and is recorded as sent there by choice, so the sweeper can move it
to the CPU queue if every GPU worker leaves before it starts.

`held` says which jobs have a message on the broker: the sweeper sends again
a queued job that has none (its message was lost).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any, cast

import redis
from celery import Celery, group
from kombu.transport.redis import Channel

from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.records import JobRecord
from models.settings import Queues
from worker.celery_app import PREDICT_TASK, TRAIN_TASK


class JobQueue:
    def __init__(
        self, app: Celery, queues: Queues, jobs: JobStore, workers: WorkerRegistry
    ) -> None:
        self.app = app
        self.queues = queues
        self.jobs = jobs
        self.workers = workers

    def queue_for(self, device: str, gpu_online: bool) -> str:
        if device == "gpu" or (device == "auto" and gpu_online):
            return self.queues.gpu
        return self.queues.cpu

    def send(self, job: JobRecord, gpu_online: bool | None = None) -> str:
        """Send `job` to the queue its kind and device call for; returns the
        queue. `gpu_online` defaults to asking the registry."""
        if gpu_online is None:
            gpu_online = self.workers.gpu_online()
        task = TRAIN_TASK if job["kind"] == "train" else PREDICT_TASK
        device = job["spec"]["device"] if job["spec"] else "auto"
        queue = self.queue_for(device, gpu_online)
        # Recorded first: the job's record says where it waits, and the sweeper
        # moves an `auto` job to the CPU queue if the GPU workers all leave.
        self.jobs.routed(job["id"], queue, by_choice=device == "auto" and queue == self.queues.gpu)
        self.app.send_task(task, args=[job["id"]], queue=queue)
        return queue

    def send_group(self, jobs: Sequence[JobRecord]) -> None:
        """Send `jobs` (a search's group jobs) to their queues as one Celery
        group: every worker consuming the queue takes its share."""
        gpu_online = self.workers.gpu_online()
        signatures = []
        for job in jobs:
            device = job["spec"]["device"] if job["spec"] else "auto"
            queue = self.queue_for(device, gpu_online)
            self.jobs.routed(job["id"], queue, device == "auto" and queue == self.queues.gpu)
            signatures.append(self.app.signature(TRAIN_TASK, args=[job["id"]], queue=queue))
        group(signatures).apply_async()

    def submit(self, job: JobRecord) -> JobRecord:
        """Queue a job just created. If the broker refuses, the job is deleted
        and the error raised, so a job acknowledged to a client is always queued."""
        try:
            job["queue"] = self.send(job)
        except Exception:
            with suppress(redis.RedisError):
                self.jobs.delete(job["id"])
            raise
        return job

    def held(self, queues: Iterable[str], delivered_after: float) -> set[str]:
        """The jobs whose message waits on one of `queues`, or was delivered
        to a worker after `delivered_after` (epoch seconds) and is not yet
        acknowledged, as a message is until its task ends. A message delivered
        before that to a job still queued is held by a worker that died before
        it claimed the job (a live one claims it at once): it does not count.

        Reads the broker's lists whole: for the sweeper, not for requests.
        (Other apps' jobs on the same Redis may be among those returned.)
        The broker is the job store's Redis (worker.celery_app), and kombu's
        Redis transport keeps a queue as a list named after it (LPUSH, BRPOP)
        and the messages delivered but not acknowledged in a hash and a sorted
        set by delivery time."""
        client = self.jobs.redis
        held: set[str] = set()
        for queue in queues:
            # From the head: a message pushed meanwhile moves the ones not read
            # yet further on, never back past the position.
            position = 0
            while chunk := client.lrange(queue, position, position + 499):
                held.update(_job_of(json.loads(raw)) for raw in chunk)
                position += len(chunk)
        # After the lists: a message taken from one meanwhile is found here.
        tags = cast(list[bytes], client.zrangebyscore(Channel.unacked_index_key,
                                                      delivered_after, "+inf"))  # fmt: skip
        if tags:
            for raw in client.hmget(Channel.unacked_key, tags):
                if raw is not None:
                    held.add(_job_of(json.loads(raw)[0]))  # [message, exchange, routing key]
        held.discard("")
        return held


def _job_of(message: dict[str, Any]) -> str:
    """The job a message on the broker is for; "" for another kind of message."""
    try:
        if message["headers"]["task"] not in (TRAIN_TASK, PREDICT_TASK):
            return ""
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        return str(args[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return ""
