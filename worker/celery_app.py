"""The one Celery app, made from Settings. Importing this never imports Keras,
so the API can use it to send jobs (worker.queue)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from models.settings import Settings

TRAIN_TASK = "fitserve.train"
PREDICT_TASK = "fitserve.predict"
# Redis redelivers an unacknowledged task after this long; a job must never
# outlive it or it would run twice (celery/celery#5935).
VISIBILITY_TIMEOUT_S = 24 * 3600
# A task the broker failed to take is not sent again: with Redis hanging each
# further try waits two more socket timeouts (reconnecting, sending), and
# Celery's default of 3 would hold a request for 7. A connection Redis closed
# meanwhile (a restart) needs no retry: redis-py's pool replaces it before use.
PUBLISH_RETRY_POLICY = {"max_retries": 0}


def make_celery(settings: Settings) -> Celery:
    app = Celery("fitserve", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_ignore_result=True,  # job state lives in our own Redis keys
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            **redis_socket_options(settings),
        },
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        # kombu's Redis transport takes its timeouts from the transport options
        # above; this one is what its other transports use to connect.
        broker_connection_timeout=settings.redis.connect_timeout_s,
        # A Redis result backend, should one be configured (none is: job state
        # lives in our own keys), waits no longer than every other client. It
        # reads these, not result_backend_transport_options (retry policy, sentinels).
        redis_socket_timeout=settings.redis.socket_timeout_s,
        redis_socket_connect_timeout=settings.redis.connect_timeout_s,
        redis_retry_on_timeout=False,
        task_default_queue=settings.queues.cpu,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


def redis_socket_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis transport waits for ever by default (socket_timeout None):
    a publish or an acknowledgement to a Redis that hangs would never return.
    These are models.redis_client's timeouts, without its retries either."""
    return {
        "socket_timeout": settings.redis.socket_timeout_s,
        "socket_connect_timeout": settings.redis.connect_timeout_s,
        "retry_on_timeout": False,
    }
