"""Keeping a job's lease alive while its worker works on it.

The lease is renewed from a thread, so that a long compilation or a long
epoch in the main thread cannot let it lapse; if the thread finds the lease
gone (the worker stalled past its expiry and another worker took the job
over), the job stops at its next cancel point and publishes nothing. That
thread may not have run yet when a stalled worker wakes up: every write the
worker makes to its job carries the lease's token, and Redis refuses it once
another delivery has claimed the job (models.jobs.store), and `confirm` asks
Redis before what cannot be taken back.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import redis

from models.errors import LeaseLost
from models.jobs.store import Claim, JobStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, jobs: JobStore, job_id: str, claim: Claim, lease_s: float) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.claim = claim
        self.token = claim.token
        self.lease_s = lease_s
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        self._done.set()
        self._thread.join()
        try:
            self.jobs.release(self.job_id, self.token)
        except redis.RedisError:
            pass  # it lapses by itself

    def check(self) -> None:
        """Raise LeaseLost when the job is no longer this worker's."""
        if self.lost.is_set():
            raise LeaseLost(f"Job {self.job_id} was taken over by another worker.")

    def confirm(self) -> None:
        """`check`, and ask Redis too: LeaseLost unless the job still runs
        under this lease's token. Asked before publishing a version."""
        self.check()
        self.jobs.check_owner(self.job_id, self.token)

    def _run(self) -> None:
        # Renewing at a quarter of the lease survives two missed renewals.
        while not self._done.wait(self.lease_s / 4):
            try:
                if not self.jobs.renew(self.job_id, self.token, self.lease_s):
                    log.error("job %s: lease lost; stopping without publishing", self.job_id)
                    self.lost.set()
                    return
            except redis.RedisError:
                log.warning("job %s: could not renew the lease; retrying", self.job_id)
