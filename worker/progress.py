"""What a running job writes into its record besides its state: each epoch's
progress, metrics and logs (`JobProgress`, which also says when to stop), and
each restart after a worker died (`record_restart`).

Apart from worker.runner so that a search's group jobs (worker.group_jobs)
and its coordinator (worker.search_coordinator) write them too without
importing the runner, which imports them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from models.errors import WorkerStopping
from models.jobs.store import JobStore, utc_now
from models.records import JobRecord
from worker.context import WorkerContext
from worker.leases import LeaseKeeper

log = logging.getLogger(__name__)

# How often a running job looks for a cancel request: often enough to stop
# within a fraction of a second, rarely enough to cost nothing per batch.
CANCEL_POLL_SECONDS = 0.2


class JobProgress:
    """Writes each epoch's progress and metrics into the job record, and
    appends its logs to the job's history: an epoch costs the same write at
    epoch 10,000 as at epoch 1."""

    def __init__(
        self, jobs: JobStore, job_id: str, epochs: int, lease: LeaseKeeper,
        history: dict[str, list[float]] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:  # fmt: skip
        self.jobs = jobs
        self.job_id = job_id
        self.epochs = epochs
        self.lease = lease
        self.stopping = stopping or threading.Event()
        # A resumed job goes on from its checkpoint's curves: one dict per epoch.
        curves = history or {}
        # Every epoch logs `loss`; a search's entries (worker.group_jobs) log `epoch`.
        self.first_epoch = len(curves.get("loss") or curves.get("epoch") or [])
        self.logs = [{name: values[index] for name, values in curves.items() if index < len(values)}
                     for index in range(self.first_epoch)]  # fmt: skip
        # How many of `logs` the job's history holds: what a run before the
        # checkpoint wrote past it is replaced by the first append.
        self.stored = self.first_epoch
        self.started = time.monotonic()
        self._next_poll = 0.0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.lease.check()  # a worker that lost its job writes nothing more to it
        del self.logs[epoch - 1 :]
        self.logs.append(dict(logs))
        elapsed = time.monotonic() - self.started
        done_here = max(epoch - self.first_epoch, 1)
        progress = {
            "epoch": epoch,
            "epochs": self.epochs,
            "fraction": round(epoch / self.epochs, 4),
            "eta_s": round(elapsed / done_here * (self.epochs - epoch), 2),
        }
        try:
            self._append(progress)
        except redis.RedisError as exc:
            # Training goes on through a Redis outage: the next epoch appends
            # this one's logs too, and the lease says whether the job is still ours.
            log.warning("job %s: progress not written: %s", self.job_id, exc)

    def _append(self, progress: dict[str, Any]) -> None:
        before = min(self.stored, len(self.logs) - 1)
        while True:  # LeaseLost, from a fenced write, when the job is not ours
            held = self.jobs.append_epochs(
                self.job_id, self.lease.token, before, self.logs[before:], progress
            )
            if held is None:
                self.stored = len(self.logs)
                return
            before = held  # epochs lost while Redis was away: from the first missing

    def should_stop(self) -> bool:
        if self.stopping.is_set():
            raise WorkerStopping(
                f"The worker is stopping; job {self.job_id} goes back to its queue."
            )
        now = time.monotonic()
        if now < self._next_poll:
            return False
        self._next_poll = now + CANCEL_POLL_SECONDS
        self.lease.check()
        try:
            return self.jobs.cancel_requested(self.job_id)
        except redis.RedisError:
            return False  # asked again at the next poll


def record_restart(job: JobRecord, lease: LeaseKeeper, epoch: int, context: WorkerContext) -> None:
    """The job record shows each time a dead worker's job was taken up again."""
    restarts = [*job.get("restarts", []), {
        "at": utc_now(), "attempt": job["attempts"], "worker": context.worker,
        "lost_worker": lease.claim.previous_worker, "resumed_from_epoch": epoch,
    }]  # fmt: skip
    context.jobs.update(job["id"], token=lease.token, restarts=restarts,
                        resumed_from_epoch=epoch)  # fmt: skip
    log.warning("job %s restarted (attempt %d), from epoch %d", job["id"], job["attempts"], epoch)
