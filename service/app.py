"""The Flask app factory."""

from __future__ import annotations

import logging

from flask import Flask

from models.datasets import UNPACK_RATIO, DatasetStore
from models.jobs.store import JobStore
from models.jobs.workers import WorkerRegistry
from models.redis_client import open_redis
from models.serving.catalog import ModelCatalog, announce_changes
from models.serving.prediction_log_writer import PredictionLog
from models.serving.predictor import Predictor
from models.serving.version_labels import VersionLabels
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.debris import forget_debris_at_start
from models.storage.model_store import ModelStore, adopt_earlier_layout
from models.storage.prediction_records import PredictionRecords
from models.storage.results import ResultStore
from models.training.backend import configure_backend
from service.auth import install_auth
from service.bodies import FitserveRequest
from service.context import Services
from service.converters import LabelNameConverter, ModelNameConverter, VersionOrLabelConverter
from service.error_handlers import register_error_handlers
from service.fast_predict import FastPredict
from service.json_provider import OrjsonProvider
from service.metrics import count_prediction_log, install_metrics
from service.routes import (
    dashboard,
    datasets,
    docs,
    jobs,
    models,
    ops,
    predictions,
    v2,
    version_labels,
)
from service.warm_routes import warm_requests
from service.wsgi import FitserveFlask
from worker.celery_app import make_celery
from worker.queue import JobQueue


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    configure_backend(settings.keras_backend)
    logging.basicConfig(level=logging.INFO)
    app = FitserveFlask(__name__)  # service.wsgi: less work per request
    app.request_class = FitserveRequest
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_upload_bytes
    app.url_map.converters["model"] = ModelNameConverter
    app.url_map.converters["label"] = LabelNameConverter
    app.url_map.converters["version"] = VersionOrLabelConverter  # V2: a number or a label
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
    # Label moves are announced as publishes are; requests read labels from memory.
    labels = VersionLabels(client, settings.redis_prefix,
                           on_change=announce_changes(client, settings.redis_prefix))  # fmt: skip
    prediction_records = PredictionRecords(blobs, settings.prediction_log.retention_s)
    services = app.extensions["fitserve"] = Services(
        settings=settings,
        redis=client,
        jobs=job_store,
        # An NPZ upload unpacks to at most UNPACK_RATIO times the upload limit.
        datasets=DatasetStore(blobs, UNPACK_RATIO * settings.limits.max_upload_bytes),
        models=model_store,
        catalog=catalog,
        # Each version is warmed (model, routes, rendering) before it is served;
        # the latest and labelled versions are held, within the model memory.
        predictor=Predictor(
            model_store, catalog, settings.model_cache_bytes, warm_requests(app), labels
        ),  # fmt: skip
        results=ResultStore(blobs),
        workers=registry,
        celery=celery,
        queue=JobQueue(celery, settings.queues, job_store, registry),
        prediction_log=PredictionLog(
            prediction_records, settings.prediction_log, count_prediction_log
        ),  # fmt: skip
        prediction_records=prediction_records,
    )
    version_labels.install_labels(app, labels)  # version labels, in Redis
    register_error_handlers(app)
    install_auth(app, settings.api_keys)
    install_metrics(app)
    for blueprint in (
        ops.blueprint,
        docs.blueprint,
        datasets.blueprint,
        jobs.blueprint,
        models.blueprint,
        version_labels.blueprint,
        predictions.blueprint,
        v2.blueprint,
        dashboard.blueprint,
    ):
        app.register_blueprint(blueprint)
    # The plainest `:predict` skips Flask's per-request work (service.fast_predict).
    app.fast_lane = FastPredict(app)
    if settings.preload_models:
        # After the routes (the warm-up matches them). In the background:
        # /healthz answers at once, /readyz once the latest version of every
        # model is loaded and warm (models.serving.warm_up).
        services.predictor.start_warm_up()
        # A version published later is loaded and warmed before it takes traffic.
        services.predictor.follow_publishes()
    return app
