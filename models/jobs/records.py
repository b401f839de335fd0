"""Job records: one hash per job, and its epochs in a list beside it.

The API creates jobs and reads them; everyone reads them field by field,
so a job's long history is read only by who shows it. A new job goes into
the job index, its state's and its model's (listing.py walks them), and
waits for its message (dispatch.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from models.errors import NotFound
from models.ids import is_job_id, new_job_id
from models.jobs.codec import decode, decode_fields, encode, epoch_logs, utc_now
from models.jobs.keys import JobKeys
from models.records import JobKind, JobRecord


@dataclass(frozen=True)
class JobRecords:
    client: redis.Redis
    keys: JobKeys

    def create(
        self, kind: JobKind, model: str, dataset: str,
        spec: dict[str, Any] | None = None, version: int | None = None,
        extra: dict[str, Any] | None = None, job_id: str | None = None,
    ) -> JobRecord:  # fmt: skip
        """A queued job: `train` (with a spec) or `predict` (with a model version).
        `extra`: a search or k-fold job's own fields (`search`, `ranking`,
        `trials`, `best`: models.training.search.trial_plan), or a group job's
        (`parent`, `group`). `job_id`: one the caller derived (a group job's)."""
        job_id = job_id or new_job_id()
        record = new_record(kind, model, dataset, spec, version, job_id)
        record.update(extra or {})  # type: ignore[typeddict-item]
        stored = {name: value for name, value in record.items() if name != "history"}
        keys, created = self.keys, time.time()
        with self.client.pipeline() as pipe:
            pipe.hset(keys.job(job_id), mapping=encode(stored))
            for index in (keys.index, keys.state_index("queued"), keys.model_index(model),
                          keys.queued_by_send):  # fmt: skip
                pipe.zadd(index, {job_id: created})
            pipe.sadd(keys.models, model)
            pipe.execute()
        return record

    def exists(self, job_id: str) -> bool:
        return bool(self.client.exists(self.keys.job(job_id)))

    def missing(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that have no job (any more)."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(self.keys.job(job_id))
            found = pipe.execute()
        return {job_id for job_id, exists in zip(ids, found, strict=True) if not exists}

    def get(self, job_id: str) -> JobRecord:
        found = self.read([job_id])[0] if is_job_id(job_id) else None
        if found is None:
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return found

    def read(self, ids: Sequence[str]) -> list[JobRecord | None]:
        """Whole records, their history assembled, in one round trip; None for
        the ids whose job is gone."""
        with self.client.pipeline() as pipe:  # MULTI: a hash and its history as one
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
                pipe.lrange(self.keys.history(job_id), 0, -1)
            found = pipe.execute()
        return [decode(raw, epochs) if raw else None
                for raw, epochs in zip(found[::2], found[1::2], strict=True)]  # fmt: skip

    def fields(self, job_id: str, *names: str) -> dict[str, Any]:
        """Some fields of a job, without reading the rest (a long history)."""
        return decode_fields(names, self.client.hmget(self.keys.job(job_id), list(names)))

    def fields_of(self, ids: Sequence[str], *names: str) -> list[dict[str, Any]]:
        """`fields` of many jobs in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), list(names))
            found = pipe.execute()
        return [decode_fields(names, values) for values in found]

    def epoch_logs(self, job_id: str, start: int = 0) -> list[dict[str, float]]:
        """The logs of each epoch from epoch `start + 1` on (what `history`
        holds from index `start`), without reading the ones before."""
        return epoch_logs(self.client.lrange(self.keys.history(job_id), start, -1))

    def update(self, job_id: str, **fields: Any) -> None:
        """Set fields of the job, whoever runs it (transitions.py fences a worker's)."""
        self.client.hset(self.keys.job(job_id), mapping=encode(fields))

    def delete(self, job_id: str) -> None:
        """The job, its history and every entry of it in an index or set."""
        model = self.fields(job_id, "model")["model"]
        keys = self.keys
        with self.client.pipeline() as pipe:
            pipe.delete(keys.job(job_id), keys.history(job_id))
            for index in (keys.index, *keys.state_indexes, keys.queued_by_send):
                pipe.zrem(index, job_id)
            if model is not None:
                pipe.zrem(keys.model_index(model), job_id)
            pipe.srem(keys.running, job_id)
            pipe.srem(keys.gpu_by_choice, job_id)
            pipe.execute()


def new_record(
    kind: JobKind, model: str, dataset: str, spec: dict[str, Any] | None, version: int | None,
    job_id: str,
) -> JobRecord:  # fmt: skip
    """A job as it is created: queued, nothing done yet."""
    epochs = spec["fit"]["epochs"] if spec else None
    return {
        "id": job_id, "kind": kind, "model": model, "state": "queued", "spec": spec,
        "version": version, "dataset": dataset,
        "progress": {"epoch": 0 if epochs else None, "epochs": epochs, "fraction": 0.0,
                     "eta_s": None},
        "metrics": {}, "history": {}, "result": None, "error": None, "device": None,
        "worker": None, "queue": None, "attempts": 0, "restarts": [],
        "resumed_from_epoch": None,
        "created_at": utc_now(), "started_at": None, "finished_at": None,
    }  # fmt: skip
