"""State changes, and the writes a worker makes to its running job.

Each state change is a Lua script that checks the current state first, so
the API and the workers never overwrite each other (a cancelled queued job
is never started, a finished job is never cancelled), and that moves the job
between the per-state indexes. A worker's writes carry its claim's token
(`token=`): once another delivery has claimed the job, they are refused
(LeaseLost), even if the first worker stalled and never saw its lease go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from models.errors import Conflict, LeaseLost
from models.jobs.codec import FINAL_STATES, encode, utc_now
from models.jobs.keys import JobKeys
from models.jobs.records import JobRecords
from models.jobs.scripts import JobScripts
from models.records import JobRecord


@dataclass(frozen=True)
class Transitions:
    client: redis.Redis
    keys: JobKeys
    scripts: JobScripts
    records: JobRecords

    def transition(
        self, job_id: str, new_state: str, allowed: tuple[str, ...], *,
        token: str | None = None, **fields: Any,
    ) -> str | None:  # fmt: skip
        """Move to `new_state` if the job is in one of `allowed`; returns the state
        it left, or None (and changes nothing) when it was elsewhere.

        With `token` (a worker's, from its claim), only while the job runs under
        it: LeaseLost, and nothing changed, otherwise. A worker moving its job
        back to `queued` hands it back (SIGTERM): that delivery does not count
        against `max_attempts`."""
        arguments: list[str | float] = [
            token or "", json.dumps(new_state), ",".join(json.dumps(state) for state in allowed),
            time.time(),
        ]  # fmt: skip
        arguments += field_arguments(fields)
        keys = self.keys.state_change(job_id)
        moved, previous = self.scripts.transition(keys=keys, args=arguments)
        if moved == -1 and token is not None:
            raise lease_lost(job_id, token)
        return json.loads(previous) if moved == 1 else None

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job now, or flag a running one to stop at its next
        batch. A running job whose worker died is cancelled now too; the flag
        stays, so a delivery already on its way does not start it again."""
        job = self.records.get(job_id)
        if job["state"] in FINAL_STATES:
            raise Conflict(
                f"Job {job_id} has already finished and cannot be cancelled. "
                f"Received: state={job['state']!r}"
            )
        self.records.update(job_id, cancel_requested=True)
        keys = [self.keys.job(job_id), self.keys.lease(job_id), self.keys.running,
                *self.keys.index_keys(job_id)]  # fmt: skip
        self.scripts.cancel_idle(keys=keys, args=[json.dumps(utc_now())])
        return self.records.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.client.hget(self.keys.job(job_id), "cancel_requested") == b"true"

    def update(self, job_id: str, *, token: str | None = None, **fields: Any) -> None:
        """Set fields of the job. With `token` (a worker's, from its claim), only
        while the job runs under it: LeaseLost, and nothing written, otherwise."""
        if token is None:
            self.records.update(job_id, **fields)
            return
        keys = [self.keys.job(job_id), self.keys.lease(job_id)]
        if not self.scripts.update_owned(keys=keys, args=[token, *field_arguments(fields)]):
            raise lease_lost(job_id, token)

    def append_epochs(
        self, job_id: str, token: str, before: int, logs: Sequence[Mapping[str, float]],
        progress: Mapping[str, Any],
    ) -> int | None:  # fmt: skip
        """Append the logs of the epochs after the first `before` to the job's
        history, and set its progress and metrics (the last epoch's logs), if
        the job runs under `token`: anything its history holds past `before`
        (a run resumed from an earlier checkpoint) is dropped first.

        Returns None when written; when the history holds fewer than `before`
        epochs (writes lost while Redis was away), how many it holds, and
        nothing is written: send those after them. LeaseLost when the job is
        not this worker's any more."""
        last = logs[-1] if logs else {}
        arguments: list[str | int] = [token, before, json.dumps(progress), json.dumps(last)]
        arguments += [json.dumps(entry, separators=(",", ":")) for entry in logs]
        keys = [self.keys.job(job_id), self.keys.lease(job_id), self.keys.history(job_id)]
        answer = int(self.scripts.append_epochs(keys=keys, args=arguments))
        if answer == -1:
            raise lease_lost(job_id, token)
        return None if answer == -2 else answer


def field_arguments(fields: Mapping[str, Any]) -> list[str]:
    """Fields as a script's ARGV tail: name, JSON value, name, ..."""
    return [part for name, value in encode(fields).items() for part in (name, value)]


def lease_lost(job_id: str, token: str) -> LeaseLost:
    return LeaseLost(
        f"Job {job_id} is not this worker's any more: another delivery owns it, or "
        "it has finished. Expected the claim's token on a running job. "
        f"Received: token {token[:8]}..."
    )
