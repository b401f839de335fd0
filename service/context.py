"""The parts a request needs, built once in create_app and reached per request."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from models.datasets import DatasetStore
from models.jobs import JobStore
from models.predictor import Predictor
from models.results import ResultStore
from models.settings import Settings
from models.store import ModelStore
from models.workers import WorkerRegistry


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
