"""The sweeper's retention pass deletes the prediction log's expired hours
(Settings.prediction_log.retention_days), on the real Redis and a real folder."""

from __future__ import annotations

import time

import redis
from celery import Celery

from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.checkpoint_files import CheckpointStore
from models.storage.prediction_records import PredictionRecords, hour_folder
from worker.queue import JobQueue
from worker.sweeper import Sweeper


def test_the_sweep_deletes_the_prediction_logs_expired_hours(
    app: Celery, settings: Settings, redis_client: redis.Redis
) -> None:
    blobs = open_blobs(settings)
    records = PredictionRecords(blobs, retention_s=86400)
    now_ms = int(time.time() * 1000)
    for age_h in (30, 2):  # one hour past the retention of a day, one within it
        moment = now_ms - age_h * 3_600_000
        records.write("m", hour_folder(moment), moment, moment, f"h-1-{age_h}", b"{}\n")
    registry = WorkerRegistry(redis_client, settings.redis_prefix)
    queue = JobQueue(app, settings.queues, JobStore(redis_client, settings.redis_prefix), registry)
    sweeper = Sweeper(queue, CheckpointStore(blobs), 30.0, predictions=records)

    sweeper.sweep()  # the first sweep of a period makes the retention pass

    (kept,) = blobs.keys("predictions/")
    assert kept.split("/")[2] == hour_folder(now_ms - 2 * 3_600_000)
