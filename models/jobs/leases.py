"""Claims and leases: who runs a job.

A running job is owned through a lease: a key holding its worker's token,
with an expiry the worker keeps renewing. Only a claim can start a job, and
a claim succeeds on a queued job, or on a running one whose lease has lapsed
(its worker died). So a duplicate delivery finds the lease held and stops,
and a dead worker's job can be claimed again and resumed. The claim's token
is also recorded in the job: the fencing token transitions.py checks. A job
that keeps killing its worker is failed after `max_attempts` deliveries; a
worker that hands its job back (SIGTERM) does not use one up.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import redis

from models.jobs.codec import text, utc_now
from models.jobs.keys import JobKeys
from models.jobs.scripts import JobScripts
from models.jobs.transitions import Transitions, lease_lost

ClaimOutcome = Literal["started", "resumed", "busy", "finished", "missing", "cancelled", "gave_up"]


@dataclass(frozen=True)
class Claim:
    """What a delivery of a job found: `started` (or `resumed`, after a dead
    worker) means this worker now holds the lease under `token`, and passes
    it with each write to the job (`token=`) and to renew the lease."""

    outcome: ClaimOutcome
    token: str
    attempts: int
    previous_worker: str | None

    @property
    def owned(self) -> bool:
        return self.outcome in ("started", "resumed")


@dataclass(frozen=True)
class Leases:
    client: redis.Redis
    keys: JobKeys
    scripts: JobScripts
    transitions: Transitions

    def claim(
        self, job_id: str, worker: str, device: str, lease_s: float, max_attempts: int
    ) -> Claim:
        """Take job `job_id` for this delivery, if no live worker holds it.

        A queued job starts. A running one whose lease lapsed (its worker died)
        is taken over and `resumed`; or `cancelled`, if a cancel was asked for
        meanwhile; or failed (`gave_up`) once it has had `max_attempts`
        deliveries, so a job that kills its worker cannot loop forever.
        Anything else is left alone. The caller renews the lease (`renew`)
        more often than `lease_s` while it works.
        """
        token = uuid.uuid4().hex
        keys = self.keys.state_change(job_id)
        arguments: list[str | int] = [
            token, int(lease_s * 1000), json.dumps(worker), json.dumps(device),
            json.dumps(utc_now()), max_attempts, job_id,
        ]  # fmt: skip
        found, count, before, lost = self.scripts.claim(keys=keys, args=arguments)
        outcome, attempts, previous = text(found), int(count), json.loads(text(before))
        if outcome == "orphaned":  # its worker died, and it must not run again
            outcome = self._end_orphan(job_id, int(lost), previous)
        return Claim(cast(ClaimOutcome, outcome), token, attempts, previous)

    def _end_orphan(self, job_id: str, lost: int, previous: str | None) -> str:
        transitions = self.transitions
        if transitions.cancel_requested(job_id):
            moved = transitions.transition(job_id, "cancelled", ("running",), finished_at=utc_now())
            return "cancelled" if moved else "finished"
        error = {
            "code": "worker_lost",
            "message": (
                f"Gave up after {lost} deliveries: each time, the worker running this "
                f"job stopped before it finished (the last was {previous}). The job may "
                "crash its worker, e.g. by running out of memory."
            ),
        }
        moved = transitions.transition(
            job_id, "failed", ("running",), finished_at=utc_now(), error=error
        )
        return "gave_up" if moved else "finished"

    def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        """Extend the lease; False when it is no longer ours (it lapsed and
        another worker took the job over)."""
        keys = [self.keys.lease(job_id)]
        return bool(self.scripts.renew(keys=keys, args=[token, int(lease_s * 1000)]))

    def release(self, job_id: str, token: str) -> None:
        self.scripts.renew(keys=[self.keys.lease(job_id)], args=[token, 0])

    def leased(self, job_id: str) -> bool:
        """Whether a live worker holds the job (its lease has not lapsed)."""
        return bool(self.client.exists(self.keys.lease(job_id)))

    def orphans(self) -> Sequence[str]:
        """Running jobs whose lease has lapsed: their worker died."""
        ids = [text(cast(bytes, job_id)) for job_id in self.client.smembers(self.keys.running)]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(self.keys.lease(job_id))
            held = pipe.execute()
        return [job_id for job_id, alive in zip(ids, held, strict=True) if not alive]

    def check_owner(self, job_id: str, token: str) -> None:
        """LeaseLost unless the job runs under `token`: asked by a worker just
        before it does what it could not take back (publishing a version)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.job(job_id), ["state", "owner_token"])
            pipe.get(self.keys.lease(job_id))
            (state, owner), lease = pipe.execute()
        if owner is None:  # claimed before there were owner tokens: the lease says
            owner = lease
        mine = owner in (token.encode(), json.dumps(token).encode())
        if state != b'"running"' or not mine or lease not in (None, token.encode()):
            raise lease_lost(job_id, token)
