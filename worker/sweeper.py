"""Finding the jobs whose worker died, and delivering them again.

Celery's own redelivery cannot be relied on for this: with `acks_late` on
Redis, a killed worker's message comes back only after the broker's
visibility timeout (hours here, so long jobs do not run twice), and a message
acknowledged before a crash never comes back. Instead every worker sweeps:
a running job whose lease has lapsed is sent to its queue again, where a
claim (models.jobs.store) lets exactly one delivery take it over and resume it from
its checkpoint. A stray duplicate message is harmless: its claim finds the
job taken or finished.

The sweep also keeps `auto` jobs from waiting on GPUs that are gone: one sent
to the GPU queue (a GPU worker was online then) is sent to the CPU queue when
no GPU worker is online any more. If a GPU worker comes back first, it takes
the job from the GPU queue and the CPU queue's copy finds it taken.
"""

from __future__ import annotations

import logging
import threading

import redis

from models.errors import NotFound
from models.jobs.store import FINAL_STATES, JobStore
from models.records import JobRecord
from models.storage.checkpoints import CheckpointStore
from worker.queue import JobQueue

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, queue: JobQueue, checkpoints: CheckpointStore, lease_s: float) -> None:
        self.queue = queue
        self.jobs: JobStore = queue.jobs
        self.checkpoints = checkpoints
        # Twice per lease: a dead worker's job waits at most 1.5 leases.
        self.interval_s = lease_s / 2
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="sweeper", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def sweep(self) -> list[str]:
        """Send every orphaned job to its queue again; returns their ids."""
        sent = []
        for job_id in self.jobs.orphans():
            if (job := self._take("redelivered", job_id)) is None:
                continue
            self.queue.send(job)
            log.warning("job %s: its worker %s is gone; delivered again", job_id, job["worker"])
            sent.append(job_id)
        sent += self._move_stranded()
        self._forget_finished_checkpoints()
        return sent

    def _move_stranded(self) -> list[str]:
        """Send `auto` jobs waiting on the GPU queue to the CPU queue when no
        GPU worker is online; returns their ids."""
        stranded = self.jobs.stranded()
        if not stranded or self.queue.workers.gpu_online():
            return []
        moved = []
        for job_id in stranded:
            if (job := self._take("rerouted", job_id)) is None:
                continue
            self.queue.send(job, gpu_online=False)
            log.warning("job %s: no GPU worker is online any more; sent to the CPU queue", job_id)
            moved.append(job_id)
        return moved

    def _take(self, action: str, job_id: str) -> JobRecord | None:
        """Job `job_id`, if this sweeper is the one (of all the workers') to
        act on it this period: one sends it per period, not one per worker."""
        if not self.jobs.take_for_period(action, job_id, self.interval_s * 4):
            return None
        try:
            return self.jobs.get(job_id)
        except NotFound:
            return None

    def _forget_finished_checkpoints(self) -> None:
        # A job cancelled by the API while its worker was gone leaves one.
        for job_id in self.checkpoints.job_ids():
            try:
                finished = self.jobs.get(job_id)["state"] in FINAL_STATES
            except NotFound:
                finished = True
            if finished:
                self.checkpoints.delete(job_id)

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except redis.RedisError as exc:
                log.warning("sweep skipped: %s", exc)
            except Exception:  # a sweep must never stop the sweeping
                log.exception("sweep failed")
            if self._stopped.wait(self.interval_s):
                return
