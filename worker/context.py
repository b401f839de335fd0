"""What a worker's jobs run with (`WorkerContext`): the stores, who and where
this worker is, the job policy, and the callables that send jobs to a queue.

A module of its own so that the runner (worker.runner), a search's group jobs
(worker.group_jobs) and its coordinator (worker.search_coordinator) all take
it without importing one another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from models.datasets import DatasetStore
from models.jobs.store import JobStore
from models.records import JobRecord
from models.serving.catalog import announce_changes
from models.settings import Jobs, Settings
from models.storage.blobs import open_blobs
from models.storage.checkpoint_files import CheckpointStore
from models.storage.model_store import ModelStore
from models.storage.results import ResultStore


@dataclass(frozen=True)
class WorkerContext:
    jobs: JobStore
    datasets: DatasetStore
    models: ModelStore
    results: ResultStore
    worker: str
    device: str
    backend: str
    checkpoints: CheckpointStore
    # The lease and the deliveries a job gets (Settings.jobs and its defaults).
    policy: Jobs = field(default_factory=Jobs)
    # Set when the worker is asked to stop (SIGTERM): the running job hands
    # itself back through `requeue` instead of running on.
    stopping: threading.Event = field(default_factory=threading.Event)
    requeue: Callable[[JobRecord], object] | None = None
    # Sends a search's group jobs as one Celery group (worker.queue.JobQueue.send_group);
    # None: the search's own worker trains them all.
    send_group: Callable[[Sequence[JobRecord]], object] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, client: redis.Redis, worker: str, device: str, backend: str,
        requeue: Callable[[JobRecord], object] | None = None,
        send_group: Callable[[Sequence[JobRecord]], object] | None = None,
    ) -> WorkerContext:  # fmt: skip
        blobs = open_blobs(settings)
        return cls(
            jobs=JobStore(client, settings.redis_prefix, settings.jobs.retention_s),
            datasets=DatasetStore(blobs),
            models=ModelStore(blobs, on_change=announce_changes(client, settings.redis_prefix)),
            results=ResultStore(blobs),
            worker=worker,
            device=device,
            backend=backend,
            checkpoints=CheckpointStore(blobs),
            policy=settings.jobs,
            requeue=requeue,
            send_group=send_group,
        )
