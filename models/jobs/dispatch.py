"""Where each queued job's message went, and when: what the sweeper reads.

A message can be lost (a broker restart), and an `auto` job sent to the GPU
queue can be stranded there when the GPU workers leave. So queued jobs are
listed by when their message was last sent, `auto` jobs on the GPU queue are
kept in a set, and a marker per period lets exactly one of every worker's
sweepers resend or reroute a job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from models.jobs.codec import text
from models.jobs.keys import JobKeys


@dataclass(frozen=True)
class Dispatch:
    client: redis.Redis
    keys: JobKeys

    def routed(self, job_id: str, queue: str, by_choice: bool) -> None:
        """Record the queue job `job_id` is sent to. `by_choice`: it went to
        the GPU queue because a GPU worker was online (device `auto`), and may
        go to the CPU queue instead if none is any more (`stranded`)."""
        with self.client.pipeline() as pipe:
            pipe.hset(self.keys.job(job_id), "queue", json.dumps(queue))
            pipe.zadd(self.keys.queued_by_send, {job_id: time.time()}, xx=True)  # if queued
            if by_choice:
                pipe.sadd(self.keys.gpu_by_choice, job_id)
            else:
                pipe.srem(self.keys.gpu_by_choice, job_id)
            pipe.execute()

    def sent_before(self, cutoff: float) -> Sequence[dict[str, Any]]:
        """The queued jobs whose message was last sent (or, never sent, that
        were created) before `cutoff` (epoch seconds), oldest first: their id,
        kind, spec and queue, what sending them takes. Forgets the jobs listed
        that wait no more (cancelled, expired, deleted)."""
        ids = [text(cast(bytes, job_id)) for job_id in
               self.client.zrangebyscore(self.keys.queued_by_send, "-inf", cutoff)]  # fmt: skip
        names = ["kind", "spec", "queue", "state"]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), names)
            found = pipe.execute()
        jobs = [{"id": job_id, **{name: json.loads(value) for name, value in
                                  zip(names, values, strict=True) if value is not None}}
                for job_id, values in zip(ids, found, strict=True)]  # fmt: skip
        if gone := [job["id"] for job in jobs if job.get("state") != "queued"]:
            self.client.zrem(self.keys.queued_by_send, *gone)
        return [job for job in jobs if job.get("state") == "queued"]

    def seen_waiting(self, ids: Sequence[str]) -> None:
        """Jobs whose message the sweeper found still waiting for a worker:
        looked at again a period later, not at every sweep."""
        if ids:
            self.client.zadd(self.keys.queued_by_send, dict.fromkeys(ids, time.time()), xx=True)

    def take_for_period(self, action: str, job_id: str, period_s: float) -> bool:
        """True for the one caller, of every worker's sweeper, that may `action`
        job `job_id` in this period (redeliver it, reroute it); False for the rest,
        so a job is sent once per period, not once per worker."""
        marker = self.keys.period_marker(action, job_id)
        return bool(self.client.set(marker, 1, nx=True, px=int(period_s * 1000)))

    def stranded(self) -> Sequence[str]:
        """The `auto` jobs still queued on the GPU queue they were sent to by
        choice; forgets those that have started (or gone) since."""
        members = self.client.smembers(self.keys.gpu_by_choice)
        ids = [text(cast(bytes, job_id)) for job_id in members]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), "state")
            states = pipe.execute()
        waiting = [job_id for job_id, state in zip(ids, states, strict=True)
                   if state == b'"queued"']  # fmt: skip
        if gone := set(ids) - set(waiting):
            self.client.srem(self.keys.gpu_by_choice, *gone)
        return waiting
