"""`fitserve-worker`: a Celery worker that trains jobs.

It runs Celery's solo pool: jobs run in this process, one at a time, with
Keras and the backend imported once at start. Nothing forks after the
framework is loaded (TensorFlow and JAX are not fork-safe), and one job per
device at a time is what a training host wants anyway.
"""

from __future__ import annotations

import gc
import os
import socket
import sys

from celery.signals import worker_shutting_down

from models.jobs.store import JobStore, utc_now
from models.jobs.workers import WorkerRegistry
from models.logs import configure_logging
from models.redis_client import open_redis
from models.settings import settings_or_exit
from models.storage.blobs import open_blobs
from models.storage.debris import forget_debris_at_start
from models.storage.model_store import adopt_earlier_layout
from models.storage.prediction_records import PredictionRecords
from models.training.backend import configure_backend, enable_compilation_cache
from models.training.fit import warm_up
from worker.celery_app import make_celery
from worker.context import WorkerContext
from worker.devices import detect_devices
from worker.heartbeat import Heartbeat
from worker.queue import JobQueue
from worker.sweeper import Sweeper
from worker.tasks import register_tasks


def main(argv: list[str] | None = None) -> None:
    settings = settings_or_exit("fitserve-worker")
    configure_backend(settings.keras_backend, quick_eager_compiles=True)
    configure_logging(settings.log_format)
    blobs = open_blobs(settings)
    adopt_earlier_layout(blobs)  # a store an earlier release wrote
    forget_debris_at_start(blobs)  # what writes cut off left in it
    import keras  # once, here: every job in this process reuses it

    # Before anything runs on a device: TensorFlow takes its memory-growth
    # setting only before its GPUs are initialized (the warm-up would).
    gpus = detect_devices(keras.backend.backend())
    enable_compilation_cache(settings.data_dir / "cache" / "xla")
    warm_up()  # the first job should not pay for the backend's start-up
    # Everything loaded so far (TensorFlow, JAX, Keras: millions of objects)
    # lives as long as the process. Frozen, the collector stops walking it:
    # the full collection after each job (and Keras' clear_session) is short
    # instead of a sizeable share of a small job's time (bench/RESULTS.md).
    gc.collect()
    gc.freeze()

    device = gpus[0] if gpus else "cpu"
    queue_name = settings.queues.gpu if gpus else settings.queues.cpu
    # Unique per process: several workers may share a host (and a broker's
    # control channel), and Celery wants distinct node names.
    name = f"fitserve-{device.replace(':', '')}-{os.getpid()}@{socket.gethostname()}"
    client = open_redis(settings)  # jobs, leases, heartbeat and sweeper share it
    app = make_celery(settings)
    registry = WorkerRegistry(client, settings.redis_prefix)
    jobs = JobStore(client, settings.redis_prefix, settings.jobs.retention_s)
    jobs.index_earlier_jobs()
    queue = JobQueue(app, settings.queues, jobs, registry)
    context = WorkerContext.from_settings(
        settings,
        client,
        name,
        device,
        keras.backend.backend(),
        requeue=queue.send,
        send_group=queue.send_group,
    )
    # SIGTERM (Celery's warm shutdown) lets the running job hand itself back
    # at its next batch or epoch, rather than be waited for or cut off.
    worker_shutting_down.connect(lambda **_: context.stopping.set(), weak=False)
    heartbeat = Heartbeat(
        registry,
        {"name": name, "hostname": socket.gethostname(), "pid": os.getpid(), "device": device,
         "gpus": gpus, "backend": context.backend, "queue": queue_name, "started_at": utc_now()},
    )  # fmt: skip
    register_tasks(app, context, heartbeat)
    predictions = PredictionRecords(open_blobs(settings), settings.prediction_log.retention_s)
    sweeper = Sweeper(queue, context.checkpoints, settings.jobs.lease_s, context.results,
                      predictions)  # fmt: skip
    heartbeat.start()
    sweeper.start()
    arguments = [
        "worker", "--pool=solo", "--concurrency=1", f"--queues={queue_name}", f"--hostname={name}",
        "--loglevel=INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    try:
        app.worker_main(arguments + list(argv if argv is not None else sys.argv[1:]))
    finally:
        sweeper.stop()
        heartbeat.stop()


if __name__ == "__main__":
    main()
