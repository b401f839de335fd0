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

The claim's token is also recorded in the job, and every write a worker makes
to its job carries it (`token=`): once another delivery has claimed the job,
the first worker's writes are refused (LeaseLost), even if it stalled and
never saw its lease go: a fencing token. A worker that hands its job back
(SIGTERM) does not use up one of its deliveries. Queued jobs are also listed
by when their message was last sent: where a sweeper looks for lost messages.

What grows with every job is kept in bounds. A job's epochs are a list
beside its hash, one JSON object appended per epoch (the record's `history`
is assembled from it when read), so an epoch costs the same at epoch 10,000
as at epoch 1. Jobs are indexed newest first overall, by state and by model
(sorted sets scored by creation time, moved between states by the same
scripts that change states), so a filtered listing or a count reads only
what it returns. A job that finishes gets an expiry (`retention_s`): its
hash and history go then, and `forget_expired` drops their index entries.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

import redis

from models.errors import Conflict, LeaseLost, NotFound
from models.ids import is_job_id, new_job_id
from models.records import JobKind, JobRecord, JobState

log = logging.getLogger(__name__)

STATES: tuple[JobState, ...] = get_args(JobState)
FINAL_STATES: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")
# Kept unless the settings say otherwise (Settings.jobs.retention_days).
DEFAULT_RETENTION_S = 30 * 86400.0

# Put ahead of each script that changes a job's state: `reindex(job hash, id,
# from, to)` moves the job between the per-state indexes and, when it
# finishes, starts the countdown of its hash and history. The script's last
# KEYS are JobStore._index_keys: the job's history list, the job index, then
# one index per state (STATES order). Filled in per JobStore (_indexing).
_REINDEX = """
local index_keys = #KEYS - %(states)d - 2
local history_key, index_key = KEYS[index_keys + 1], KEYS[index_keys + 2]
local by_state = {}
for i, name in ipairs({%(names)s}) do by_state[name] = KEYS[index_keys + 2 + i] end
local final = {%(finals)s}
local function reindex(job, id, from, to)
  local created = redis.call('ZSCORE', index_key, id) or redis.call('TIME')[1]
  if by_state[from] then redis.call('ZREM', by_state[from], id) end
  redis.call('ZADD', by_state[to], created, id)
  if final[to] then
    redis.call('PEXPIRE', job, %(retention_ms)d)
    redis.call('PEXPIRE', history_key, %(retention_ms)d)
  end
end
"""

# After _OWNED. KEYS: job hash, lease, history list. ARGV: owner token, epochs
# stored before these, progress, metrics (JSON), then one JSON object per
# epoch. Writes nothing and returns -1 unless the job runs under this token;
# returns the list's length when it holds fewer epochs than ARGV[2] (some were
# never written: the caller sends from there); else trims what a run before a
# resume wrote past ARGV[2], appends, and returns -2.
_APPEND_EPOCHS = """
if not owned() then return -1 end
local before = tonumber(ARGV[2])
local stored = redis.call('LLEN', KEYS[3])
if stored < before then return stored end
if stored > before and before == 0 then redis.call('DEL', KEYS[3])
elseif stored > before then redis.call('LTRIM', KEYS[3], 0, before - 1) end
for i = 5, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'metrics', ARGV[4])
return -2
"""

# After _REINDEX. KEYS: job hash, its model's index, the set of models, then
# JobStore._index_keys. ARGV: job id, model. Indexes a job written before
# there were indexes by state and model.
_INDEX_EARLIER = """
local state = redis.call('HGET', KEYS[1], 'state')
local created = redis.call('ZSCORE', index_key, ARGV[1])
if not state or not created or not by_state[state] then return 0 end
for _, key in pairs(by_state) do redis.call('ZREM', key, ARGV[1]) end
redis.call('ZADD', by_state[state], created, ARGV[1])
redis.call('ZADD', KEYS[2], created, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""

# KEYS: a model's index, the set of models. ARGV: the model. Forgets a model
# whose jobs have all gone, unless one was created meanwhile.
_FORGET_MODEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""

# Put ahead of each script through which a worker writes to its job (KEYS[1]
# the job hash, KEYS[2] its lease, ARGV[1] the worker's token, bare): `owned()`
# is true while the job runs under that token. A claim records the token in the
# job (`owner_token`, JSON) and the next claim replaces it, so a worker that
# lost its job (it stalled past its lease, and another worker took the job
# over) can write nothing more to it: a fencing token. A lease held under
# another token refuses it too (a claim by a release before owner tokens); a
# job claimed before there were such tokens has only its lease.
_OWNED = """
local function owned()
  local lease = redis.call('GET', KEYS[2])
  local owner = redis.call('HGET', KEYS[1], 'owner_token') or lease
  return (owner == ARGV[1] or owner == cjson.encode(ARGV[1]))
     and (not lease or lease == ARGV[1])
     and redis.call('HGET', KEYS[1], 'state') == '"running"'
end
"""

# After _OWNED. KEYS: job hash, lease. ARGV: token, field, value, ...  A
# worker's write to its running job; 0 (nothing written) when it is not its own.
_UPDATE_OWNED = """
if not owned() then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# After _REINDEX and _OWNED. KEYS: job hash, lease, running set, the queued
# jobs by last send (JobStore._sent), then JobStore._index_keys. ARGV: token
# ('' for a move that is not a worker's: fenced otherwise, {-1, state} when the
# job is not the worker's), new state, allowed current states (comma list),
# now (s), field, value, ...  Every value is JSON, the states too ('"queued"').
# A job goes back to `queued` only when its worker hands it back (SIGTERM):
# that delivery is counted in `handed_back`, so it does not use up one of the
# job's `max_attempts`, and the job waits for a message again (_sent).
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {0, ''} end
if ARGV[1] ~= '' and not owned() then return {-1, current} end
local allowed = ',' .. ARGV[3] .. ','
if not string.find(allowed, ',' .. current .. ',', 1, true) then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local id = cjson.decode(redis.call('HGET', KEYS[1], 'id'))
reindex(KEYS[1], id, current, ARGV[2])
if ARGV[2] == '"running"' then redis.call('SADD', KEYS[3], id)
else redis.call('SREM', KEYS[3], id) end
if ARGV[2] == '"queued"' then
  redis.call('HINCRBY', KEYS[1], 'handed_back', 1)
  redis.call('ZADD', KEYS[4], ARGV[4], id)
end
return {1, current}
"""

# After _REINDEX. KEYS: job hash, lease, running set, the queued jobs by last
# send (JobStore._sent), then JobStore._index_keys. ARGV: token, lease ms,
# worker, device, started_at (JSON), max attempts, job id. Returns {outcome,
# attempts, previous worker, deliveries lost}. The token goes into the lease and
# into the job (`owner_token`, see _OWNED). A running job without a lease is
# taken over unless a cancel waits for it or it has lost its deliveries (those
# whose worker died: a hand-back is not one): those come back `orphaned`, for
# the caller to end. Whatever it finds, the job no longer waits for a message.
_CLAIM = """
redis.call('ZREM', KEYS[4], ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0, 'null', 0} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local lost = attempts - tonumber(redis.call('HGET', KEYS[1], 'handed_back') or '0')
local previous = redis.call('HGET', KEYS[1], 'worker') or 'null'
local outcome = 'started'
if state == '"running"' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', attempts, previous, lost} end
  if redis.call('HGET', KEYS[1], 'cancel_requested') == 'true'
     or lost >= tonumber(ARGV[6]) then
    return {'orphaned', attempts, previous, lost}
  end
  outcome = 'resumed'
elseif state == '"queued"' then
  redis.call('HSET', KEYS[1], 'state', '"running"', 'started_at', ARGV[5])
  redis.call('SADD', KEYS[3], ARGV[7])
  reindex(KEYS[1], ARGV[7], state, '"running"')
else
  return {'finished', attempts, previous, lost}
end
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'device', ARGV[4], 'attempts', attempts + 1,
           'owner_token', cjson.encode(ARGV[1]))
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {outcome, attempts + 1, previous, lost}
"""

# KEYS: lease. ARGV: token, lease ms (0 releases it).
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# After _REINDEX. KEYS: job hash, lease, running set, then
# JobStore._index_keys. ARGV: finished_at (JSON). Cancels a
# queued job, or a running one whose worker is gone (no one else will).
_CANCEL_IDLE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == '"running"' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if state ~= '"queued"' and state ~= '"running"' then return 0 end
redis.call('HSET', KEYS[1], 'state', '"cancelled"', 'finished_at', ARGV[1])
redis.call('SREM', KEYS[3], cjson.decode(redis.call('HGET', KEYS[1], 'id')))
reindex(KEYS[1], cjson.decode(redis.call('HGET', KEYS[1], 'id')), state, '"cancelled"')
return 1
"""

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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    def __init__(
        self, client: redis.Redis, prefix: str, retention_s: float = DEFAULT_RETENTION_S
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.retention_s = retention_s
        indexing = _indexing(retention_s)
        self._transition = client.register_script(indexing + _OWNED + _TRANSITION)
        self._update_owned = client.register_script(_OWNED + _UPDATE_OWNED)
        self._claim = client.register_script(indexing + _CLAIM)
        self._renew = client.register_script(_RENEW)
        self._cancel_idle = client.register_script(indexing + _CANCEL_IDLE)
        self._append_epochs = client.register_script(_OWNED + _APPEND_EPOCHS)
        self._index_earlier = client.register_script(indexing + _INDEX_EARLIER)
        self._forget_model = client.register_script(_FORGET_MODEL)

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _lease(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    @property
    def _running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def _sent(self) -> str:
        # Queued jobs, scored by when their message was last sent (or, never
        # sent yet, when they were created): where the sweeper looks for jobs
        # whose message was lost.
        return f"{self.prefix}:queued-by-send"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:jobs"

    def _history(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:history"

    def _state_index(self, state: str) -> str:
        return f"{self.prefix}:jobs:state:{state}"

    def _model_index(self, model: str) -> str:
        return f"{self.prefix}:jobs:model:{model}"

    @property
    def _models(self) -> str:
        # The models that have a job index: the ones forget_expired trims.
        return f"{self.prefix}:jobs:models"

    @property
    def _devices(self) -> str:
        # The devices that have training totals (`training:<device>` hashes).
        return f"{self.prefix}:training-devices"

    def _index_keys(self, job_id: str) -> list[str]:
        """The last KEYS of a script that changes state (_REINDEX)."""
        return [self._history(job_id), self._index, *map(self._state_index, STATES)]

    @property
    def _on_gpu_by_choice(self) -> str:
        # `auto` jobs sent to the GPU queue: the ones to move if the GPUs leave.
        return f"{self.prefix}:gpu-by-choice"

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
            **(extra or {}),  # type: ignore[typeddict-item]
        }  # fmt: skip
        stored = {name: value for name, value in record.items() if name != "history"}
        created = time.time()
        with self.redis.pipeline() as pipe:
            pipe.hset(self._key(job_id), mapping=_encode(stored))
            for index in (self._index, self._state_index("queued"), self._model_index(model),
                          self._sent):  # fmt: skip
                pipe.zadd(index, {job_id: created})
            pipe.sadd(self._models, model)
            pipe.execute()
        return record

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(self._key(job_id)))

    def leased(self, job_id: str) -> bool:
        """Whether a live worker holds the job (its lease has not lapsed)."""
        return bool(self.redis.exists(self._lease(job_id)))

    def get(self, job_id: str) -> JobRecord:
        found = self._read([job_id])[0] if is_job_id(job_id) else None
        if found is None:
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return found

    def _read(self, ids: Sequence[str]) -> list[JobRecord | None]:
        """Whole records, their history assembled, in one round trip; None for
        the ids whose job is gone."""
        with self.redis.pipeline() as pipe:  # MULTI: a hash and its history as one
            for job_id in ids:
                pipe.hgetall(self._key(job_id))
                pipe.lrange(self._history(job_id), 0, -1)
            found = pipe.execute()
        return [_decode(raw, epochs) if raw else None
                for raw, epochs in zip(found[::2], found[1::2], strict=True)]  # fmt: skip

    def fields(self, job_id: str, *names: str) -> dict[str, Any]:
        """Some fields of a job, without reading the rest (a long history)."""
        values = self.redis.hmget(self._key(job_id), list(names))
        return {name: None if value is None else json.loads(value)
                for name, value in zip(names, values, strict=True)}  # fmt: skip

    def fields_of(self, ids: Sequence[str], *names: str) -> list[dict[str, Any]]:
        """`fields` of many jobs in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self._key(job_id), list(names))
            found = pipe.execute()
        return [{name: None if value is None else json.loads(value)
                 for name, value in zip(names, values, strict=True)}
                for values in found]  # fmt: skip

    def epoch_logs(self, job_id: str, start: int = 0) -> list[dict[str, float]]:
        """The logs of each epoch from epoch `start + 1` on (what `history`
        holds from index `start`), without reading the ones before."""
        return _epochs(self.redis.lrange(self._history(job_id), start, -1))

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
        keys = [self._key(job_id), self._lease(job_id), self._history(job_id)]
        answer = int(self._append_epochs(keys=keys, args=arguments))
        if answer == -1:
            raise _lease_lost(job_id, token)
        return None if answer == -2 else answer

    def list(
        self, state: str | None = None, model: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[JobRecord], int | None]:
        """Jobs newest first, filtered; returns (page, next offset or None).

        A filter walks its own index (by state or by model), so a page reads
        the jobs it shows, not every job; with both filters the smaller index
        is walked, and each entry's other field read alone. Offsets count
        entries of the index walked. Entries whose job has expired are dropped."""
        walked, check = self._walk_plan(state, model)
        matches: list[JobRecord] = []
        gone: list[str] = []
        position = offset
        while len(matches) <= limit:
            needed = limit + 1 - len(matches)
            batch = max(needed, 20) if check is None else 200
            ids = [_text(cast(bytes, job_id)) for job_id in
                   self.redis.zrevrange(walked, position, position + batch - 1)]  # fmt: skip
            if not ids:
                break
            wanted = self._matching(ids, check, gone)
            chosen = [job_id for job_id in ids if job_id in wanted][:needed]
            records = dict(zip(chosen, self._read(chosen), strict=True))
            for job_id in ids:
                if job_id in wanted and job_id not in records:
                    break  # read in the next round
                position += 1
                job = records.get(job_id)
                if job_id in records and job is None:
                    gone.append(job_id)
                if job is not None and _matches(job, state, model):
                    matches.append(job)
                if len(matches) > limit:
                    self._drop_entries(gone, walked)  # they were before the next page
                    return matches[:limit], position - 1 - len(gone)
        self._drop_entries(gone, walked)
        return matches[:limit], None

    def _walk_plan(
        self, state: str | None, model: str | None
    ) -> tuple[str, tuple[str, bytes] | None]:
        """The index a listing walks, and the (field, stored value) each of its
        jobs must also have, if any."""
        if state is None:
            return (self._index if model is None else self._model_index(model)), None
        if model is None:
            return self._state_index(state), None
        by_state, by_model = self._state_index(state), self._model_index(model)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(by_state)
            pipe.zcard(by_model)
            in_state, of_model = pipe.execute()
        if in_state <= of_model:
            return by_state, ("model", json.dumps(model).encode())
        return by_model, ("state", json.dumps(state).encode())

    def _matching(
        self, ids: Sequence[str], check: tuple[str, bytes] | None, gone: MutableSequence[str]
    ) -> set[str]:
        if check is None:
            return set(ids)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._key(job_id), check[0])
            values = pipe.execute()
        gone.extend(job_id for job_id, value in zip(ids, values, strict=True) if value is None)
        return {job_id for job_id, value in zip(ids, values, strict=True) if value == check[1]}

    def _drop_entries(self, ids: Sequence[str], *indexes: str) -> None:
        """Forget index entries of jobs that are gone (expired, or deleted)."""
        if not ids:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for index in {self._index, *map(self._state_index, STATES), *indexes}:
                pipe.zrem(index, *ids)
            pipe.execute()

    def update(self, job_id: str, *, token: str | None = None, **fields: Any) -> None:
        """Set fields of the job. With `token` (a worker's, from its claim), only
        while the job runs under it: LeaseLost, and nothing written, otherwise."""
        if token is None:
            self.redis.hset(self._key(job_id), mapping=_encode(fields))
            return
        arguments = [token]
        for name, value in _encode(fields).items():
            arguments += [name, value]
        if not self._update_owned(keys=[self._key(job_id), self._lease(job_id)], args=arguments):
            raise _lease_lost(job_id, token)

    def check_owner(self, job_id: str, token: str) -> None:
        """LeaseLost unless the job runs under `token`: asked by a worker just
        before it does what it could not take back (publishing a version)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._key(job_id), ["state", "owner_token"])
            pipe.get(self._lease(job_id))
            (state, owner), lease = pipe.execute()
        if owner is None:  # claimed before there were owner tokens: the lease says
            owner = lease
        mine = owner in (token.encode(), json.dumps(token).encode())
        if state != b'"running"' or not mine or lease not in (None, token.encode()):
            raise _lease_lost(job_id, token)

    def routed(self, job_id: str, queue: str, by_choice: bool) -> None:
        """Record the queue job `job_id` is sent to. `by_choice`: it went to
        the GPU queue because a GPU worker was online (device `auto`), and may
        go to the CPU queue instead if none is any more (`stranded`)."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self._key(job_id), "queue", json.dumps(queue))
            pipe.zadd(self._sent, {job_id: time.time()}, xx=True)  # if it is queued
            if by_choice:
                pipe.sadd(self._on_gpu_by_choice, job_id)
            else:
                pipe.srem(self._on_gpu_by_choice, job_id)
            pipe.execute()

    def sent_before(self, cutoff: float) -> Sequence[dict[str, Any]]:
        """The queued jobs whose message was last sent (or, never sent, that
        were created) before `cutoff` (epoch seconds), oldest first: their id,
        kind, spec and queue, what sending them takes. Forgets the jobs listed
        that wait no more (cancelled, expired, deleted)."""
        ids = [_text(cast(bytes, job_id))
               for job_id in self.redis.zrangebyscore(self._sent, "-inf", cutoff)]  # fmt: skip
        names = ["kind", "spec", "queue", "state"]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self._key(job_id), names)
            found = pipe.execute()
        jobs = [{"id": job_id, **{name: json.loads(value) for name, value in
                                  zip(names, values, strict=True) if value is not None}}
                for job_id, values in zip(ids, found, strict=True)]  # fmt: skip
        if gone := [job["id"] for job in jobs if job.get("state") != "queued"]:
            self.redis.zrem(self._sent, *gone)
        return [job for job in jobs if job.get("state") == "queued"]

    def seen_waiting(self, ids: Sequence[str]) -> None:
        """Jobs whose message the sweeper found still waiting for a worker:
        looked at again a period later, not at every sweep."""
        if ids:
            self.redis.zadd(self._sent, dict.fromkeys(ids, time.time()), xx=True)

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
        self, job_id: str, new_state: str, allowed: tuple[str, ...], *,
        token: str | None = None, **fields: Any,
    ) -> str | None:  # fmt: skip
        """Move to `new_state` if the job is in one of `allowed`; returns the state
        it left, or None (and changes nothing) when it was elsewhere.

        With `token` (a worker's, from its claim), only while the job runs under
        it: LeaseLost, and nothing changed, otherwise. A worker moving its job
        back to `queued` hands it back (SIGTERM): that delivery does not count
        against `max_attempts`."""
        # Every field is stored JSON-encoded, the state too ('"queued"').
        arguments: list[str | float] = [
            token or "", json.dumps(new_state), ",".join(json.dumps(state) for state in allowed),
            time.time(),
        ]  # fmt: skip
        for name, value in _encode(fields).items():
            arguments += [name, value]
        keys = [self._key(job_id), self._lease(job_id), self._running, self._sent,
                *self._index_keys(job_id)]  # fmt: skip
        moved, previous = self._transition(keys=keys, args=arguments)
        if moved == -1 and token is not None:
            raise _lease_lost(job_id, token)
        return json.loads(previous) if moved == 1 else None

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
        keys = [self._key(job_id), self._lease(job_id), self._running, self._sent,
                *self._index_keys(job_id)]  # fmt: skip
        arguments: list[str | int] = [
            token, int(lease_s * 1000), json.dumps(worker), json.dumps(device),
            json.dumps(utc_now()), max_attempts, job_id,
        ]  # fmt: skip
        found, count, before, lost = self._claim(keys=keys, args=arguments)
        outcome, attempts, previous = _text(found), int(count), json.loads(_text(before))
        if outcome == "orphaned":  # its worker died, and it must not run again
            outcome = self._end_orphan(job_id, int(lost), previous)
        return Claim(cast(ClaimOutcome, outcome), token, attempts, previous)

    def _end_orphan(self, job_id: str, lost: int, previous: str | None) -> str:
        if self.cancel_requested(job_id):
            moved = self.transition(job_id, "cancelled", ("running",), finished_at=utc_now())
            return "cancelled" if moved else "finished"
        error = {
            "code": "worker_lost",
            "message": (
                f"Gave up after {lost} deliveries: each time, the worker running this "
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
            keys=[self._key(job_id), self._lease(job_id), self._running, *self._index_keys(job_id)],
            args=[json.dumps(utc_now())],
        )
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(self._key(job_id), "cancel_requested") == b"true"

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state: the size of each state's index.
        (A job that expired counts until forget_expired drops its entry.)"""
        with self.redis.pipeline(transaction=False) as pipe:
            for state in STATES:
                pipe.zcard(self._state_index(state))
            sizes = pipe.execute()
        return {state: int(size) for state, size in zip(STATES, sizes, strict=True) if size}

    def record_training(self, device: str, samples: int, seconds: float) -> None:
        """Add a finished fit to the per-device totals that /metrics exports."""
        key = f"{self.prefix}:training:{device}"
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrbyfloat(key, "samples", samples)
            pipe.hincrbyfloat(key, "seconds", seconds)
            pipe.hset(key, "last_samples_per_s", samples / seconds if seconds > 0 else 0.0)
            pipe.sadd(self._devices, device)
            pipe.execute()

    def training_totals(self) -> dict[str, dict[str, float]]:
        devices = sorted(_text(device) for device in self.redis.smembers(self._devices))
        with self.redis.pipeline(transaction=False) as pipe:
            for device in devices:
                pipe.hgetall(f"{self.prefix}:training:{device}")
            found = pipe.execute()
        return {device: {_text(name): float(value) for name, value in totals.items()}
                for device, totals in zip(devices, found, strict=True) if totals}  # fmt: skip

    def delete(self, job_id: str) -> None:
        model = self.fields(job_id, "model")["model"]
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key(job_id), self._history(job_id))
            for index in (self._index, *map(self._state_index, STATES), self._sent):
                pipe.zrem(index, job_id)
            if model is not None:
                pipe.zrem(self._model_index(model), job_id)
            pipe.srem(self._running, job_id)
            pipe.srem(self._on_gpu_by_choice, job_id)
            pipe.execute()

    def missing(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that have no job (any more)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(self._key(job_id))
            found = pipe.execute()
        return {job_id for job_id, exists in zip(ids, found, strict=True) if not exists}

    def forget_expired(self, batch: int = 500) -> int:
        """Drop the index entries of jobs whose records have expired (or were
        deleted), and give a finished job written before there was an expiry
        one, counted from when it finished; returns how many entries went.

        Only jobs created longer than `retention_s` ago can have expired, so
        only those entries are read: the pass costs what is old, not what is
        kept. Entries are dropped one by one, not by score alone: a job
        created long ago may still run, or have finished lately."""
        cutoff = time.time() - self.retention_s
        models = sorted(_text(model) for model in self.redis.smembers(self._models))
        dropped = 0
        for index in (self._index, *map(self._state_index, STATES),
                      *map(self._model_index, models)):  # fmt: skip
            kept = 0
            while True:
                ids = [_text(cast(bytes, job_id)) for job_id in self.redis.zrangebyscore(
                    index, "-inf", cutoff, start=kept, num=batch)]  # fmt: skip
                gone = self.missing(ids)
                if gone:
                    self.redis.zrem(index, *gone)
                if index == self._index:
                    self._expire_finished([job_id for job_id in ids if job_id not in gone])
                dropped += len(gone)
                kept += len(ids) - len(gone)
                if len(ids) < batch:
                    break
        for model in models:
            self._forget_model(keys=[self._model_index(model), self._models], args=[model])
        return dropped

    def _expire_finished(self, ids: Sequence[str]) -> None:
        final = {json.dumps(state).encode() for state in FINAL_STATES}
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self._key(job_id), ["state", "finished_at"])
                pipe.ttl(self._key(job_id))
            found = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id, (state, finished), ttl in zip(ids, found[::2], found[1::2], strict=True):
                if state not in final or ttl != -1:
                    continue  # not finished, or its countdown runs
                try:
                    ended = datetime.fromisoformat(json.loads(finished)).timestamp()
                except (TypeError, ValueError):  # not a time: from now, then
                    ended = time.time()
                ends = ended + self.retention_s
                pipe.expireat(self._key(job_id), int(ends) + 1)
                pipe.expireat(self._history(job_id), int(ends) + 1)
            pipe.execute()

    def index_earlier_jobs(self) -> int:
        """Index by state and by model the jobs written before those indexes
        existed (and list the devices with training totals); returns how many
        jobs it indexed. Idempotent, and done once: every process may call it
        at start: a Redis that is away then leaves it to the next start."""
        try:
            return self._index_earlier_jobs()
        except redis.RedisError as exc:
            log.warning("jobs of an earlier release not indexed yet: %s", exc)
            return 0

    def _index_earlier_jobs(self) -> int:
        done = f"{self.prefix}:jobs:indexed"
        if self.redis.exists(done):
            return 0
        for key in self.redis.scan_iter(f"{self.prefix}:training:*"):  # at start only
            self.redis.sadd(self._devices, _text(key).rsplit(":training:", 1)[1])
        indexed = 0
        position = 0
        while ids := [_text(cast(bytes, job_id)) for job_id in
                      self.redis.zrange(self._index, position, position + 499)]:  # fmt: skip
            position += len(ids)
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hget(self._key(job_id), "model")
                models = pipe.execute()
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id, model in zip(ids, models, strict=True):
                    if model is None:
                        continue
                    name = json.loads(model)
                    self._index_earlier(keys=[self._key(job_id), self._model_index(name),
                                              self._models, *self._index_keys(job_id)],
                                        args=[job_id, name], client=pipe)  # fmt: skip
                indexed += sum(pipe.execute())
        self.redis.set(done, 1)
        if indexed:
            log.info("indexed %d jobs of an earlier release by state and model", indexed)
        return indexed


def _matches(job: JobRecord, state: str | None, model: str | None) -> bool:
    # What the index walked says already; read again, it costs nothing.
    return (state is None or job["state"] == state) and (model is None or job["model"] == model)


def _encode(fields: Mapping[str, Any]) -> dict[Any, str]:  # Any: what redis-py accepts as a key
    return {name: json.dumps(value) for name, value in fields.items()}


def _decode(raw: Mapping[Any, Any], epochs: Sequence[bytes | str]) -> JobRecord:
    record = {_text(name): json.loads(value) for name, value in raw.items()}
    record.pop("cancel_requested", None)
    record.pop("owner_token", None)
    record.pop("handed_back", None)
    if epochs or "history" not in record:  # else a record from before the history list
        history: dict[str, list[float]] = {}
        for logs in _epochs(epochs):
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
        record["history"] = history
    return cast(JobRecord, record)


def _epochs(entries: Sequence[bytes | str]) -> list[dict[str, float]]:
    # One parse of a JSON array: a fraction of the time of one parse per epoch.
    return cast(list[dict[str, float]], json.loads(f"[{','.join(map(_text, entries))}]"))


def _indexing(retention_s: float) -> str:
    """_REINDEX, for this retention."""
    return _REINDEX % {
        "states": len(STATES),
        "names": ", ".join(f"'{json.dumps(state)}'" for state in STATES),
        "finals": ", ".join(f"['{json.dumps(state)}'] = true" for state in FINAL_STATES),
        "retention_ms": int(retention_s * 1000),
    }


def _lease_lost(job_id: str, token: str) -> LeaseLost:
    return LeaseLost(
        f"Job {job_id} is not this worker's any more: another delivery owns it, or "
        "it has finished. Expected the claim's token on a running job. "
        f"Received: token {token[:8]}..."
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
