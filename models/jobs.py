"""Job state in Redis: one hash per job, written field by field.

The API creates jobs and asks to cancel them; the worker moves them through
their states and writes progress. Each writes only its own fields, and state
changes go through one Lua script that checks the current state first, so the
two never overwrite each other (a cancelled queued job is never started, a
finished job is never cancelled).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import redis

from models.errors import Conflict, NotFound

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
JSON_FIELDS = ("spec", "progress", "metrics", "history", "result", "error", "resumed_from_epoch")

# KEYS[1] job hash, ARGV: new state, allowed current states (comma list), fields...
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {0, ''} end
local allowed = ',' .. ARGV[2] .. ','
if not string.find(allowed, ',' .. current .. ',', 1, true) then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return {1, current}
"""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._transition = client.register_script(_TRANSITION)

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:jobs"

    def create(
        self, kind: str, model: str, dataset: str,
        spec: dict[str, Any] | None = None, version: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A queued job: `train` (with a spec) or `predict` (with a model version)."""
        job_id = uuid.uuid4().hex
        epochs = spec["fit"]["epochs"] if spec else None
        record = {
            "id": job_id, "kind": kind, "model": model, "state": "queued", "spec": spec,
            "version": version, "dataset": dataset,
            "progress": {"epoch": 0 if epochs else None, "epochs": epochs, "fraction": 0.0,
                         "eta_s": None},
            "metrics": {}, "history": {}, "result": None, "error": None, "device": None,
            "worker": None, "attempts": 0, "resumed_from_epoch": None,
            "created_at": utc_now(), "started_at": None, "finished_at": None,
        }  # fmt: skip
        with self.redis.pipeline() as pipe:
            pipe.hset(self._key(job_id), mapping=_encode(record))
            pipe.zadd(self._index, {job_id: time.time()})
            pipe.execute()
        return record

    def get(self, job_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self._key(job_id)) if job_id.isalnum() else {}
        if not raw:
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return _decode(raw)

    def list(
        self, state: str | None = None, model: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Jobs newest first, filtered; returns (page, next offset or None)."""
        matches: list[dict[str, Any]] = []
        position = offset
        batch = 200
        while len(matches) <= limit:
            ids = self.redis.zrevrange(self._index, position, position + batch - 1)
            if not ids:
                break
            for job_id in ids:
                position += 1
                raw = self.redis.hgetall(self._key(_text(cast(bytes, job_id))))
                if not raw:
                    continue
                job = _decode(raw)
                if (state is None or job["state"] == state) and (
                    model is None or job["model"] == model
                ):
                    matches.append(job)
                    if len(matches) > limit:
                        return matches[:limit], position - 1
        return matches[:limit], None

    def update(self, job_id: str, **fields: Any) -> None:
        self.redis.hset(self._key(job_id), mapping=_encode(fields))

    def transition(
        self, job_id: str, new_state: str, allowed: tuple[str, ...], **fields: Any
    ) -> str | None:
        """Move to `new_state` if the job is in one of `allowed`; returns the state
        it left, or None (and changes nothing) when it was elsewhere."""
        # Every field is stored JSON-encoded, the state too ('"queued"').
        arguments = [json.dumps(new_state), ",".join(json.dumps(state) for state in allowed)]
        for name, value in _encode(fields).items():
            arguments += [name, value]
        moved, previous = self._transition(keys=[self._key(job_id)], args=arguments)
        return json.loads(previous) if moved else None

    def count_attempt(self, job_id: str) -> None:
        # attempts is stored as the JSON integer it is, which HINCRBY can add to.
        self.redis.hincrby(self._key(job_id), "attempts", 1)

    def request_cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job now, or flag a running one to stop at its next batch."""
        job = self.get(job_id)
        if job["state"] in FINAL_STATES:
            raise Conflict(
                f"Job {job_id} has already finished and cannot be cancelled. "
                f"Received: state={job['state']!r}"
            )
        self.update(job_id, cancel_requested=True)
        self.transition(job_id, "cancelled", ("queued",), finished_at=utc_now())
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(self._key(job_id), "cancel_requested") == b"true"

    def delete(self, job_id: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key(job_id))
            pipe.zrem(self._index, job_id)
            pipe.execute()


def _encode(fields: dict[str, Any]) -> dict[Any, str]:  # Any: what redis-py accepts as a key
    return {name: json.dumps(value) for name, value in fields.items()}


def _decode(raw: Mapping[Any, Any]) -> dict[str, Any]:
    record = {_text(name): json.loads(value) for name, value in raw.items()}
    record.pop("cancel_requested", None)
    return record


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
