"""The parts a request needs, built once in create_app and reached per request."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from models.datasets import DatasetStore
from models.errors import NotFound, ValidationFailed, problem
from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.records import DatasetRecord
from models.serving.catalog import ModelCatalog
from models.serving.prediction_log_writer import PredictionLog
from models.serving.predictor import Predictor
from models.settings import Settings
from models.storage.model_store import ModelStore
from models.storage.prediction_records import PredictionRecords
from models.storage.results import ResultStore
from worker.queue import JobQueue


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    datasets: DatasetStore
    models: ModelStore
    # What versions exist, for reads (cached for a bucket); writes go to `models`.
    catalog: ModelCatalog
    predictor: Predictor
    results: ResultStore
    workers: WorkerRegistry
    celery: Celery
    queue: JobQueue
    # The sampled prediction log: its writer (per process) and its stored records.
    prediction_log: PredictionLog
    prediction_records: PredictionRecords

    def dataset_named_in_body(self, dataset_id: str) -> DatasetRecord:
        """The dataset a job's body names, or a 422 at ["dataset"]."""
        try:
            return self.datasets.get(dataset_id)
        except NotFound:
            message = (
                f"No dataset with id {dataset_id!r}: upload it first. Received: {dataset_id!r}"
            )
            raise ValidationFailed(message, details=[problem(["dataset"], message)]) from None


def services() -> Services:
    return current_app.extensions["fitserve"]
