"""The one way a job reaches a worker: `JobQueue.send`, built once per process
(the API's, each worker's) and used by the routes, the hand-back on SIGTERM
and the sweeper alike.

GPU hosts consume the `gpu` queue and CPU hosts the `cpu` queue. A `gpu` job
waits for a GPU worker; an `auto` one goes to the GPU queue when a GPU worker
is online, and is recorded as sent there by choice, so the sweeper can move it
to the CPU queue if every GPU worker leaves before it starts.
"""

from __future__ import annotations

from contextlib import suppress

import redis
from celery import Celery

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
