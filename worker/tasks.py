"""Celery tasks: thin, JSON in and out; the work is in worker.runner."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from celery import Celery

from models.logs import job_context
from models.records import JobRecord
from worker.celery_app import PREDICT_TASK, TRAIN_TASK
from worker.context import WorkerContext
from worker.heartbeat import Heartbeat
from worker.runner import run_prediction_job, run_training_job


def register_tasks(app: Celery, context: WorkerContext, heartbeat: Heartbeat) -> None:
    def run(runner: Callable[[str, WorkerContext], JobRecord], job_id: str) -> dict[str, Any]:
        heartbeat.job_started(job_id)
        try:
            with job_context(job_id):  # every log line of the job carries its id
                job = runner(job_id, context)
        finally:
            heartbeat.job_finished()
            gc.collect()  # let the backend hand the job's device memory back
        return {"id": job["id"], "state": job["state"]}

    @app.task(name=TRAIN_TASK)
    def train(job_id: str) -> dict[str, Any]:
        return run(run_training_job, job_id)

    @app.task(name=PREDICT_TASK)
    def predict(job_id: str) -> dict[str, Any]:
        return run(run_prediction_job, job_id)
