"""JobStore: the job state the API and the workers share, in Redis, as one
object. Each method is one of its parts' (the package map: models.jobs), so
callers keep one name for it and the parts stay small; the keys and data
formats are the parts' (keys.py, codec.py, scripts/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from models.jobs.codec import FINAL_STATES, STATES, utc_now
from models.jobs.dispatch import Dispatch
from models.jobs.keys import JobKeys
from models.jobs.leases import Claim, ClaimOutcome, Leases
from models.jobs.listing import Listing
from models.jobs.migration import Migration
from models.jobs.records import JobRecords
from models.jobs.retention import DEFAULT_RETENTION_S, Retention
from models.jobs.scripts import JobScripts
from models.jobs.totals import TrainingTotals
from models.jobs.transitions import Transitions
from models.records import JobKind, JobRecord

__all__ = [
    "DEFAULT_RETENTION_S", "FINAL_STATES", "STATES", "Claim", "ClaimOutcome", "JobStore",
    "utc_now",
]  # fmt: skip


class JobStore:
    def __init__(
        self, client: redis.Redis, prefix: str, retention_s: float = DEFAULT_RETENTION_S
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.retention_s = retention_s
        self.keys = keys = JobKeys(prefix)
        scripts = JobScripts.register(client, retention_s)
        self.records = JobRecords(client, keys)
        self.transitions = Transitions(client, keys, scripts, self.records)
        self.leases = Leases(client, keys, scripts, self.transitions)
        self.dispatch = Dispatch(client, keys)
        self.listing = Listing(client, keys, self.records)
        self.totals = TrainingTotals(client, keys)
        self.retention = Retention(client, keys, scripts, self.records, retention_s)
        self.migration = Migration(client, keys, scripts)

    # Records (records.py)
    def create(
        self, kind: JobKind, model: str, dataset: str,
        spec: dict[str, Any] | None = None, version: int | None = None,
        extra: dict[str, Any] | None = None, job_id: str | None = None,
    ) -> JobRecord:  # fmt: skip
        return self.records.create(kind, model, dataset, spec, version, extra, job_id)

    def exists(self, job_id: str) -> bool:
        return self.records.exists(job_id)

    def missing(self, ids: Sequence[str]) -> set[str]:
        return self.records.missing(ids)

    def get(self, job_id: str) -> JobRecord:
        return self.records.get(job_id)

    def fields(self, job_id: str, *names: str) -> dict[str, Any]:
        return self.records.fields(job_id, *names)

    def fields_of(self, ids: Sequence[str], *names: str) -> list[dict[str, Any]]:
        return self.records.fields_of(ids, *names)

    def epoch_logs(self, job_id: str, start: int = 0) -> list[dict[str, float]]:
        return self.records.epoch_logs(job_id, start)

    def delete(self, job_id: str) -> None:
        self.records.delete(job_id)

    # State changes and a worker's fenced writes (transitions.py)
    def transition(
        self, job_id: str, new_state: str, allowed: tuple[str, ...], *,
        token: str | None = None, **fields: Any,
    ) -> str | None:  # fmt: skip
        return self.transitions.transition(job_id, new_state, allowed, token=token, **fields)

    def update(self, job_id: str, *, token: str | None = None, **fields: Any) -> None:
        self.transitions.update(job_id, token=token, **fields)

    def append_epochs(
        self, job_id: str, token: str, before: int, logs: Sequence[Mapping[str, float]],
        progress: Mapping[str, Any],
    ) -> int | None:  # fmt: skip
        return self.transitions.append_epochs(job_id, token, before, logs, progress)

    def request_cancel(self, job_id: str) -> JobRecord:
        return self.transitions.request_cancel(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.transitions.cancel_requested(job_id)

    # Claims and leases (leases.py)
    def claim(
        self, job_id: str, worker: str, device: str, lease_s: float, max_attempts: int
    ) -> Claim:
        return self.leases.claim(job_id, worker, device, lease_s, max_attempts)

    def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        return self.leases.renew(job_id, token, lease_s)

    def release(self, job_id: str, token: str) -> None:
        self.leases.release(job_id, token)

    def leased(self, job_id: str) -> bool:
        return self.leases.leased(job_id)

    def orphans(self) -> Sequence[str]:
        return self.leases.orphans()

    def check_owner(self, job_id: str, token: str) -> None:
        self.leases.check_owner(job_id, token)

    # Where each queued job's message went (dispatch.py)
    def routed(self, job_id: str, queue: str, by_choice: bool) -> None:
        self.dispatch.routed(job_id, queue, by_choice)

    def sent_before(self, cutoff: float) -> Sequence[dict[str, Any]]:
        return self.dispatch.sent_before(cutoff)

    def seen_waiting(self, ids: Sequence[str]) -> None:
        self.dispatch.seen_waiting(ids)

    def take_for_period(self, action: str, job_id: str, period_s: float) -> bool:
        return self.dispatch.take_for_period(action, job_id, period_s)

    def stranded(self) -> Sequence[str]:
        return self.dispatch.stranded()

    # Per-device training totals (totals.py)
    def record_training(self, device: str, samples: int, seconds: float) -> None:
        self.totals.record_training(device, samples, seconds)

    def training_totals(self) -> dict[str, dict[str, float]]:
        return self.totals.training_totals()

    # Retention and the migration (retention.py, migration.py)
    def forget_expired(self, batch: int = 500) -> int:
        return self.retention.forget_expired(batch)

    def index_earlier_jobs(self) -> int:
        return self.migration.index_earlier_jobs()

    # Listing and counting (listing.py); last: `list` names a method below here
    def count_by_state(self) -> dict[str, int]:
        return self.listing.count_by_state()

    def list(
        self, state: str | None = None, model: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[JobRecord], int | None]:
        return self.listing.list(state, model, offset, limit)
