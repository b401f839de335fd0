"""The one Celery app, made from Settings. Importing this never imports Keras,
so the API can use it to enqueue jobs."""

from __future__ import annotations

from typing import Any

from celery import Celery

from models.jobs.store import JobStore
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


def queue_for(settings: Settings, device: str, gpu_online: bool) -> str:
    """The queue a job goes to: GPU hosts consume `gpu`, CPU hosts `cpu`.
    `gpu` jobs wait for a GPU worker; `auto` ones take a GPU when one is online."""
    if device == "gpu" or (device == "auto" and gpu_online):
        return settings.queues.gpu
    return settings.queues.cpu


def enqueue(
    app: Celery, settings: Settings, jobs: JobStore, job: dict[str, Any], gpu_online: bool
) -> str:
    """Send job `job` to the queue its kind and device call for; returns it."""
    task = TRAIN_TASK if job["kind"] == "train" else PREDICT_TASK
    device = job["spec"]["device"] if job.get("spec") else "auto"
    queue = queue_for(settings, device, gpu_online)
    # Recorded first: the job's record says where it waits, and the sweeper
    # moves an `auto` job to the CPU queue if the GPU workers all leave.
    jobs.routed(job["id"], queue, by_choice=device == "auto" and queue == settings.queues.gpu)
    app.send_task(task, args=[job["id"]], queue=queue)
    return queue
