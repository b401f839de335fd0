"""The Flask app factory."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from models.datasets import UNPACK_RATIO, DatasetStore
from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.redis_client import open_redis
from models.serving.catalog import ModelCatalog, announce_changes
from models.serving.predictor import Predictor
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.debris import forget_debris_at_start
from models.storage.model_store import ModelStore, adopt_earlier_layout
from models.storage.results import ResultStore
from models.training.backend import configure_backend
from service.auth import install_auth
from service.bodies import FitserveRequest
from service.context import Services
from service.converters import ModelNameConverter
from service.error_handlers import register_error_handlers
from service.json_provider import OrjsonProvider
from service.metrics import install_metrics
from service.routes import dashboard, datasets, docs, jobs, models, ops, v2
from worker.celery_app import make_celery
from worker.queue import JobQueue


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    configure_backend(settings.keras_backend)
    logging.basicConfig(level=logging.INFO)
    app = Flask(__name__)
    app.request_class = FitserveRequest
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_upload_bytes
    app.url_map.converters["model"] = ModelNameConverter
    client = open_redis(settings)  # the job store, registry and catalog share it
    blobs = open_blobs(settings)
    adopt_earlier_layout(blobs)  # a store an earlier release wrote
    forget_debris_at_start(blobs)  # what writes cut off left in it
    # Every API process learns of a publish or delete through Redis at once.
    model_store = ModelStore(blobs, on_change=announce_changes(client, settings.redis_prefix))
    job_store = JobStore(client, settings.redis_prefix, settings.jobs.retention_s)
    job_store.index_earlier_jobs()
    registry = WorkerRegistry(client, settings.redis_prefix)
    celery = make_celery(settings)
    # Its subscriber starts on the first ask, in each API worker process.
    catalog = ModelCatalog(model_store, client, settings.redis_prefix)
    services = app.extensions["fitserve"] = Services(
        settings=settings,
        redis=client,
        jobs=job_store,
        # An NPZ upload unpacks to at most UNPACK_RATIO times the upload limit.
        datasets=DatasetStore(blobs, UNPACK_RATIO * settings.limits.max_upload_bytes),
        models=model_store,
        catalog=catalog,
        predictor=Predictor(model_store, catalog, settings.model_cache_size),
        results=ResultStore(blobs),
        workers=registry,
        celery=celery,
        queue=JobQueue(celery, settings.queues, job_store, registry),
    )
    register_error_handlers(app)
    install_auth(app, settings.api_keys)
    install_metrics(app)
    if settings.preload_models:
        # In the background: the worker answers health checks at once.
        threading.Thread(target=services.predictor.preload_latest, daemon=True).start()
    for blueprint in (
        ops.blueprint,
        docs.blueprint,
        datasets.blueprint,
        jobs.blueprint,
        models.blueprint,
        v2.blueprint,
        dashboard.blueprint,
    ):
        app.register_blueprint(blueprint)
    return app
