"""The sweeper's retention pass (worker.sweeper.Sweeper.forget_expired), on
the real Redis and a real folder store: a job's record expires in Redis
by itself (Settings.jobs.retention_days); what it leaves elsewhere, its
index entries and a prediction job's result, goes with the next pass."""

from __future__ import annotations

import time

import numpy as np
import redis
from celery import Celery

from models.jobs.store import JobStore, utc_now
from models.jobs.workers import WorkerRegistry
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.checkpoint_files import CheckpointStore
from models.storage.results import ResultStore
from worker.queue import JobQueue
from worker.sweeper import Sweeper

LEASE_S = 30.0


def finished_prediction(jobs: JobStore, results: ResultStore) -> str:
    job_id = str(jobs.create("predict", "m", "d", version=1)["id"])
    claim = jobs.claim(job_id, "w", "cpu", LEASE_S, 3)
    results.save(job_id, np.zeros((2, 1)), ["no", "no"])
    assert jobs.transition(job_id, "succeeded", ("running",), token=claim.token,
                           finished_at=utc_now()) == "running"  # fmt: skip
    return job_id


def test_the_results_and_index_entries_of_expired_jobs_go(
    app: Celery, settings: Settings, redis_client: redis.Redis
) -> None:
    # Milliseconds of retention: the records really expire, at once.
    brief = JobStore(redis_client, settings.redis_prefix, retention_s=0.001)
    kept = JobStore(redis_client, settings.redis_prefix, retention_s=3600)
    results = ResultStore(open_blobs(settings))
    queue = JobQueue(
        app, settings.queues, brief, WorkerRegistry(redis_client, settings.redis_prefix)
    )
    sweeper = Sweeper(queue, CheckpointStore(open_blobs(settings)), LEASE_S, results)
    expired = finished_prediction(brief, results)
    recent = finished_prediction(kept, results)
    deadline = time.monotonic() + 10
    while brief.missing([expired]) != {expired}:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    sweeper.sweep()  # the first sweep of a period makes the pass

    assert results.job_ids() == [recent]
    assert [job["id"] for job in brief.list()[0]] == [recent]
    assert brief.count_by_state() == {"succeeded": 1}
    assert results.load(recent)[1] == ["no", "no"]


def test_group_models_left_for_a_search_that_ended_go_and_a_running_one_s_stay(
    app: Celery, settings: Settings, redis_client: redis.Redis
) -> None:
    jobs = JobStore(redis_client, settings.redis_prefix, retention_s=3600)
    blobs = open_blobs(settings)
    queue = JobQueue(
        app, settings.queues, jobs, WorkerRegistry(redis_client, settings.redis_prefix)
    )
    sweeper = Sweeper(queue, CheckpointStore(blobs), LEASE_S)
    running, ended = (str(jobs.create("train", "m", "d", spec=None)["id"]) for _ in range(2))
    jobs.claim(running, "w", "cpu", LEASE_S, 3)
    failed = jobs.claim(ended, "w", "cpu", LEASE_S, 3)
    jobs.transition(ended, "failed", ("running",), token=failed.token, finished_at=utc_now())
    gone = "0" * 32  # a search whose record expired
    for search_id in (running, ended, gone):
        blobs.put(f"searches/{search_id}/group-1.keras", b"a model")

    sweeper.forget_expired()

    assert list(blobs.keys("searches/")) == [f"searches/{running}/group-1.keras"]
