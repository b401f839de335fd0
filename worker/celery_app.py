"""The one Celery app, made from Settings. Importing this never imports Keras,
so the API can use it to send jobs (worker.queue)."""

from __future__ import annotations

from celery import Celery

from models.settings import Settings

TRAIN_TASK = "fitserve.train"
PREDICT_TASK = "fitserve.predict"
# Redis redelivers an unacknowledged task after this long; a job must never
# outlive it or it would run twice (celery/celery#5935).
VISIBILITY_TIMEOUT_S = 24 * 3600


def make_celery(settings: Settings) -> Celery:
    app = Celery("fitserve", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_ignore_result=True,  # job state lives in our own Redis keys
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        task_default_queue=settings.queues.cpu,
        task_serializer="json",
        accept_content=["json"],
    )
    return app
