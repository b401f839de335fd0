"""Job state in Redis: one hash per job, written field by field.

The API creates jobs and asks to cancel them; the worker moves them through
their states and writes progress. Each writes only its own fields, and state
changes go through Lua scripts that check the current state first, so the
two never overwrite each other (a cancelled queued job is never started, a
finished job is never cancelled).

A running job is owned through a lease: a key holding its worker's token,
with an expiry the worker keeps renewing. Only a claim can start a job, and a
claim succeeds on a queued job, or on a running one whose lease has lapsed
(its worker died). So a duplicate delivery finds the lease held and stops, and
a dead worker's job can be claimed again and resumed. Running jobs are also in
a set, which is where a sweeper looks for lapsed leases.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

import redis

from models.errors import Conflict, NotFound
from models.ids import is_job_id, new_job_id
from models.records import JobKind, JobRecord, JobState

STATES: tuple[JobState, ...] = get_args(JobState)
FINAL_STATES: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")

# KEYS: job hash, running set. ARGV: new state, allowed current states (comma
# list), field, value, ...  Every value is JSON, the states too ('"queued"').
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {0, ''} end
local allowed = ',' .. ARGV[2] .. ','
if not string.find(allowed, ',' .. current .. ',', 1, true) then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local id = cjson.decode(redis.call('HGET', KEYS[1], 'id'))
if ARGV[1] == '"running"' then redis.call('SADD', KEYS[2], id)
else redis.call('SREM', KEYS[2], id) end
return {1, current}
"""

# KEYS: job hash, lease, running set. ARGV: token, lease ms, worker, device,
# started_at (JSON), max attempts. Returns {outcome, attempts, previous worker}.
# A running job without a lease is taken over unless a cancel waits for it or it
# has had its deliveries: those come back `orphaned`, for the caller to end.
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0, 'null'} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local previous = redis.call('HGET', KEYS[1], 'worker') or 'null'
local outcome = 'started'
if state == '"running"' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', attempts, previous} end
  if redis.call('HGET', KEYS[1], 'cancel_requested') == 'true'
     or attempts >= tonumber(ARGV[6]) then
    return {'orphaned', attempts, previous}
  end
  outcome = 'resumed'
elseif state == '"queued"' then
  redis.call('HSET', KEYS[1], 'state', '"running"', 'started_at', ARGV[5])
  redis.call('SADD', KEYS[3], cjson.decode(redis.call('HGET', KEYS[1], 'id')))
else
  return {'finished', attempts, previous}
end
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'device', ARGV[4], 'attempts', attempts + 1)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {outcome, attempts + 1, previous}
"""

# KEYS: lease. ARGV: token, lease ms (0 releases it).
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS: job hash, lease, running set. ARGV: finished_at (JSON). Cancels a
# queued job, or a running one whose worker is gone (no one else will).
_CANCEL_IDLE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == '"running"' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if state ~= '"queued"' and state ~= '"running"' then return 0 end
redis.call('HSET', KEYS[1], 'state', '"cancelled"', 'finished_at', ARGV[1])
redis.call('SREM', KEYS[3], cjson.decode(redis.call('HGET', KEYS[1], 'id')))
return 1
"""

ClaimOutcome = Literal["started", "resumed", "busy", "finished", "missing", "cancelled", "gave_up"]


@dataclass(frozen=True)
class Claim:
    """What a delivery of a job found: `started` (or `resumed`, after a dead
    worker) means this worker now holds the lease under `token`."""

    outcome: ClaimOutcome
    token: str
    attempts: int
    previous_worker: str | None

    @property
    def owned(self) -> bool:
        return self.outcome in ("started", "resumed")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._cancel_idle = client.register_script(_CANCEL_IDLE)

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _lease(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    @property
    def _running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def _on_gpu_by_choice(self) -> str:
        # `auto` jobs sent to the GPU queue: the ones to move if the GPUs leave.
        return f"{self.prefix}:gpu-by-choice"

    def create(
        self, kind: JobKind, model: str, dataset: str,
        spec: dict[str, Any] | None = None, version: int | None = None,
    ) -> JobRecord:  # fmt: skip
        """A queued job: `train` (with a spec) or `predict` (with a model version)."""
        job_id = new_job_id()
        epochs = spec["fit"]["epochs"] if spec else None
        record: JobRecord = {
            "id": job_id, "kind": kind, "model": model, "state": "queued", "spec": spec,
            "version": version, "dataset": dataset,
            "progress": {"epoch": 0 if epochs else None, "epochs": epochs, "fraction": 0.0,
                         "eta_s": None},
            "metrics": {}, "history": {}, "result": None, "error": None, "device": None,
            "worker": None, "queue": None, "attempts": 0, "restarts": [],
            "resumed_from_epoch": None,
            "created_at": utc_now(), "started_at": None, "finished_at": None,
        }  # fmt: skip
        with self.redis.pipeline() as pipe:
            pipe.hset(self._key(job_id), mapping=_encode(record))
            pipe.zadd(self._index, {job_id: time.time()})
            pipe.execute()
        return record

    def get(self, job_id: str) -> JobRecord:
        raw = self.redis.hgetall(self._key(job_id)) if is_job_id(job_id) else {}
        if not raw:
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return _decode(raw)

    def fields(self, job_id: str, *names: str) -> dict[str, Any]:
        """Some fields of a job, without reading the rest (a long history)."""
        values = self.redis.hmget(self._key(job_id), list(names))
        return {name: None if value is None else json.loads(value)
                for name, value in zip(names, values, strict=True)}  # fmt: skip

    def list(
        self, state: str | None = None, model: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[JobRecord], int | None]:
        """Jobs newest first, filtered; returns (page, next offset or None)."""
        matches: list[JobRecord] = []
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

    def routed(self, job_id: str, queue: str, by_choice: bool) -> None:
        """Record the queue job `job_id` is sent to. `by_choice`: it went to
        the GPU queue because a GPU worker was online (device `auto`), and may
        go to the CPU queue instead if none is any more (`stranded`)."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self._key(job_id), "queue", json.dumps(queue))
            if by_choice:
                pipe.sadd(self._on_gpu_by_choice, job_id)
            else:
                pipe.srem(self._on_gpu_by_choice, job_id)
            pipe.execute()

    def take_for_period(self, action: str, job_id: str, period_s: float) -> bool:
        """True for the one caller, of every worker's sweeper, that may `action`
        job `job_id` in this period (redeliver it, reroute it); False for the rest,
        so a job is sent once per period, not once per worker."""
        marker = f"{self.prefix}:{action}:{job_id}"
        return bool(self.redis.set(marker, 1, nx=True, px=int(period_s * 1000)))

    def stranded(self) -> Sequence[str]:
        """The `auto` jobs still queued on the GPU queue they were sent to by
        choice; forgets those that have started (or gone) since."""
        ids = [_text(cast(bytes, job_id)) for job_id in self.redis.smembers(self._on_gpu_by_choice)]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._key(job_id), "state")
            states = pipe.execute()
        waiting = [job_id for job_id, state in zip(ids, states, strict=True)
                   if state == b'"queued"']  # fmt: skip
        if gone := set(ids) - set(waiting):
            self.redis.srem(self._on_gpu_by_choice, *gone)
        return waiting

    def transition(
        self, job_id: str, new_state: str, allowed: tuple[str, ...], **fields: Any
    ) -> str | None:
        """Move to `new_state` if the job is in one of `allowed`; returns the state
        it left, or None (and changes nothing) when it was elsewhere."""
        # Every field is stored JSON-encoded, the state too ('"queued"').
        arguments = [json.dumps(new_state), ",".join(json.dumps(state) for state in allowed)]
        for name, value in _encode(fields).items():
            arguments += [name, value]
        moved, previous = self._transition(keys=[self._key(job_id), self._running], args=arguments)
        return json.loads(previous) if moved else None

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
        keys = [self._key(job_id), self._lease(job_id), self._running]
        arguments: list[str | int] = [
            token, int(lease_s * 1000), json.dumps(worker), json.dumps(device),
            json.dumps(utc_now()), max_attempts,
        ]  # fmt: skip
        found, count, before = self._claim(keys=keys, args=arguments)
        outcome, attempts, previous = _text(found), int(count), json.loads(_text(before))
        if outcome == "orphaned":  # its worker died, and it must not run again
            outcome = self._end_orphan(job_id, attempts, previous)
        return Claim(cast(ClaimOutcome, outcome), token, attempts, previous)

    def _end_orphan(self, job_id: str, attempts: int, previous: str | None) -> str:
        if self.cancel_requested(job_id):
            moved = self.transition(job_id, "cancelled", ("running",), finished_at=utc_now())
            return "cancelled" if moved else "finished"
        error = {
            "code": "worker_lost",
            "message": (
                f"Gave up after {attempts} deliveries: each time, the worker running this "
                f"job stopped before it finished (the last was {previous}). The job may "
                "crash its worker, e.g. by running out of memory."
            ),
        }
        moved = self.transition(job_id, "failed", ("running",), finished_at=utc_now(), error=error)
        return "gave_up" if moved else "finished"

    def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        """Extend the lease; False when it is no longer ours (it lapsed and
        another worker took the job over)."""
        return bool(self._renew(keys=[self._lease(job_id)], args=[token, int(lease_s * 1000)]))

    def release(self, job_id: str, token: str) -> None:
        self._renew(keys=[self._lease(job_id)], args=[token, 0])

    def orphans(self) -> Sequence[str]:
        """Running jobs whose lease has lapsed: their worker died."""
        ids = [_text(cast(bytes, job_id)) for job_id in self.redis.smembers(self._running)]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(self._lease(job_id))
            held = pipe.execute()
        return [job_id for job_id, alive in zip(ids, held, strict=True) if not alive]

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job now, or flag a running one to stop at its next
        batch. A running job whose worker died is cancelled now too; the flag
        stays, so a delivery already on its way does not start it again."""
        job = self.get(job_id)
        if job["state"] in FINAL_STATES:
            raise Conflict(
                f"Job {job_id} has already finished and cannot be cancelled. "
                f"Received: state={job['state']!r}"
            )
        self.update(job_id, cancel_requested=True)
        self._cancel_idle(
            keys=[self._key(job_id), self._lease(job_id), self._running],
            args=[json.dumps(utc_now())],
        )
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(self._key(job_id), "cancel_requested") == b"true"

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (reads every job's state: a
        pipelined HGET each, a few milliseconds per thousand jobs)."""
        counts: dict[str, int] = {}
        ids = self.redis.zrange(self._index, 0, -1)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._key(_text(cast(bytes, job_id))), "state")
            for state in pipe.execute():
                if state is not None:
                    name = json.loads(state)
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def record_training(self, device: str, samples: int, seconds: float) -> None:
        """Add a finished fit to the per-device totals that /metrics exports."""
        key = f"{self.prefix}:training:{device}"
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrbyfloat(key, "samples", samples)
            pipe.hincrbyfloat(key, "seconds", seconds)
            pipe.hset(key, "last_samples_per_s", samples / seconds if seconds > 0 else 0.0)
            pipe.execute()

    def training_totals(self) -> dict[str, dict[str, float]]:
        totals = {}
        for key in self.redis.scan_iter(f"{self.prefix}:training:*"):
            device = _text(cast(bytes, key)).rsplit(":training:", 1)[1]
            totals[device] = {_text(name): float(value)
                              for name, value in self.redis.hgetall(key).items()}  # fmt: skip
        return totals

    def delete(self, job_id: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key(job_id))
            pipe.zrem(self._index, job_id)
            pipe.srem(self._running, job_id)
            pipe.srem(self._on_gpu_by_choice, job_id)
            pipe.execute()


def _encode(fields: Mapping[str, Any]) -> dict[Any, str]:  # Any: what redis-py accepts as a key
    return {name: json.dumps(value) for name, value in fields.items()}


def _decode(raw: Mapping[Any, Any]) -> JobRecord:
    record = {_text(name): json.loads(value) for name, value in raw.items()}
    record.pop("cancel_requested", None)
    return cast(JobRecord, record)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
