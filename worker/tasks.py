"""Celery tasks: thin, JSON in and out; the work is in models.runner."""

from __future__ import annotations

from typing import Any

from celery import Celery

from models.runner import WorkerContext, run_prediction_job, run_training_job
from worker.celery_app import PREDICT_TASK, TRAIN_TASK


def register_tasks(app: Celery, context: WorkerContext) -> None:
    @app.task(name=TRAIN_TASK)
    def train(job_id: str) -> dict[str, Any]:
        job = run_training_job(job_id, context)
        return {"id": job["id"], "state": job["state"]}

    @app.task(name=PREDICT_TASK)
    def predict(job_id: str) -> dict[str, Any]:
        job = run_prediction_job(job_id, context)
        return {"id": job["id"], "state": job["state"]}
