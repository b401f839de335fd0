"""Finding the jobs whose worker died, and delivering them again.

Celery's own redelivery cannot be relied on: with `acks_late` on Redis a
killed worker's message comes back only after the visibility timeout, and
one acknowledged before a crash never does. So every worker sweeps: a
running job whose lease has lapsed is sent to its queue again, where a claim
(models.jobs) lets exactly one delivery resume it from its checkpoint. A
queued job whose message was lost is sent again once its message is found
nowhere on the broker (worker.queue.JobQueue.held), so a job waiting in a
busy queue is not sent twice. `auto` jobs waiting on GPUs that are gone go
to the CPU queue. Every few minutes one sweeper also forgets what expired:
old jobs' index entries and results, ended searches' models, old log hours.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

import redis

from models.errors import NotFound
from models.jobs.store import FINAL_STATES, JobStore
from models.records import JobRecord
from models.storage.checkpoint_files import CheckpointStore
from models.storage.prediction_records import PredictionRecords
from models.storage.results import ResultStore
from worker.group_jobs import SEARCH_BLOBS
from worker.queue import JobQueue

log = logging.getLogger(__name__)

# How often one of the workers' sweepers forgets what expired jobs left: a
# job's record is kept for days (Settings.jobs.retention_days), so minutes late
# is on time.
FORGET_EXPIRED_EVERY_S = 300.0


class Sweeper:
    def __init__(
        self, queue: JobQueue, checkpoints: CheckpointStore, lease_s: float,
        results: ResultStore | None = None, predictions: PredictionRecords | None = None,
    ) -> None:  # fmt: skip
        self.queue = queue
        self.jobs: JobStore = queue.jobs
        self.checkpoints = checkpoints
        self.results = results
        self.predictions = predictions
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
        sent += self._resend_lost()
        sent += self._move_stranded()
        self._forget_finished_checkpoints()
        if self.jobs.take_for_period("forget-expired", "all", FORGET_EXPIRED_EVERY_S):
            self.forget_expired()
        return sent

    def _resend_lost(self) -> list[str]:
        """Send again the queued jobs whose message is gone; returns their ids."""
        period = self.interval_s * 4
        since = time.time() - period
        waiting = self.jobs.sent_before(since)
        if not waiting:
            return []
        held = self.queue.held({job["queue"] for job in waiting if job.get("queue")}, since)
        self.jobs.seen_waiting([job["id"] for job in waiting if job["id"] in held])
        sent = []
        for job in waiting:
            if job["id"] in held or not self.jobs.take_for_period("resent", job["id"], period):
                continue
            self.queue.send(cast(JobRecord, job))
            log.warning("job %s: queued, but its message was lost; sent again", job["id"])
            sent.append(job["id"])
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
            # The state alone (None: the job is gone), not a long job's history.
            state = self.jobs.fields(job_id, "state")["state"]
            if state is None or state in FINAL_STATES:
                self.checkpoints.delete(job_id)

    def forget_expired(self) -> None:
        """Drop what jobs whose records have expired leave behind (Redis has
        no expiry for index entries, the store none for objects): their index
        entries, and prediction jobs' results. The prediction log's hours
        older than its retention go too."""
        self.jobs.forget_expired()
        self._forget_search_models()
        if self.predictions is not None:
            if removed := self.predictions.forget_expired():
                log.info("prediction log: %d expired objects deleted", removed)
        if self.results is None:
            return
        stored = self.results.job_ids()
        for job_id in sorted(self.jobs.missing(stored)):
            self.results.delete(job_id)
            log.info("job %s: its record expired; its result is deleted", job_id)

    def _forget_search_models(self) -> None:
        """Group jobs' models left for a search that ended without deleting them
        (its worker died for the last time, or it expired)."""
        blobs = self.checkpoints.blobs
        for search_id in blobs.children(f"{SEARCH_BLOBS}/"):
            state = self.jobs.fields(search_id, "state")["state"]
            if state is None or state in FINAL_STATES:
                for key in list(blobs.keys(f"{SEARCH_BLOBS}/{search_id}/")):
                    blobs.delete(key)
                log.info("search %s has ended: its group jobs' models are deleted", search_id)

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
