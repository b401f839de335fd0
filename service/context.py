"""The parts a request needs, built once in create_app and reached per request."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from models.datasets import DatasetStore
from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.serving.predictor import Predictor
from models.settings import Settings
from models.storage.model_store import ModelStore
from models.storage.results import ResultStore


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    datasets: DatasetStore
    models: ModelStore
    predictor: Predictor
    results: ResultStore
    workers: WorkerRegistry
    celery: Celery


def services() -> Services:
    return current_app.extensions["fitserve"]
