"""Retention: a finished job is kept `retention_s`, then goes.

A job that finishes gets an expiry from the script that finishes it: its
hash and history go then, by Redis itself. What Redis cannot drop are the
index entries that pointed at them: `forget_expired` does, reading only the
entries old enough to have expired, and gives a finished job written before
there were expiries one of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import redis

from models.jobs.codec import FINAL_STATES, text
from models.jobs.keys import JobKeys
from models.jobs.records import JobRecords
from models.jobs.scripts import JobScripts

# Kept unless the settings say otherwise (Settings.jobs.retention_days).
DEFAULT_RETENTION_S = 30 * 86400.0


@dataclass(frozen=True)
class Retention:
    client: redis.Redis
    keys: JobKeys
    scripts: JobScripts
    records: JobRecords
    retention_s: float

    def forget_expired(self, batch: int = 500) -> int:
        """Drop the index entries of jobs whose records have expired (or were
        deleted), and give a finished job written before there was an expiry
        one, counted from when it finished; returns how many entries went.

        Only jobs created longer than `retention_s` ago can have expired, so
        only those entries are read: the pass costs what is old, not what is
        kept. Entries are dropped one by one, not by score alone: a job
        created long ago may still run, or have finished lately."""
        cutoff = time.time() - self.retention_s
        models = sorted(text(model) for model in self.client.smembers(self.keys.models))
        indexes = [self.keys.index, *self.keys.state_indexes, *map(self.keys.model_index, models)]
        dropped = sum(self._forget_in(index, cutoff, batch) for index in indexes)
        for model in models:
            self.scripts.forget_model(keys=[self.keys.model_index(model), self.keys.models],
                                      args=[model])  # fmt: skip
        return dropped

    def _forget_in(self, index: str, cutoff: float, batch: int) -> int:
        """forget_expired in one index, `batch` entries a round trip."""
        dropped = kept = 0
        while True:
            ids = [text(cast(bytes, job_id)) for job_id in self.client.zrangebyscore(
                index, "-inf", cutoff, start=kept, num=batch)]  # fmt: skip
            gone = self.records.missing(ids)
            if gone:
                self.client.zrem(index, *gone)
            if index == self.keys.index:
                self._expire_finished([job_id for job_id in ids if job_id not in gone])
            dropped += len(gone)
            kept += len(ids) - len(gone)
            if len(ids) < batch:
                return dropped

    def _expire_finished(self, ids: Sequence[str]) -> None:
        final = {json.dumps(state).encode() for state in FINAL_STATES}
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), ["state", "finished_at"])
                pipe.ttl(self.keys.job(job_id))
            found = pipe.execute()
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, (state, finished), ttl in zip(ids, found[::2], found[1::2], strict=True):
                if state not in final or ttl != -1:
                    continue  # not finished, or its countdown runs
                ends = int(self._finished_at(finished) + self.retention_s) + 1
                pipe.expireat(self.keys.job(job_id), ends)
                pipe.expireat(self.keys.history(job_id), ends)
            pipe.execute()

    @staticmethod
    def _finished_at(stored: bytes | None) -> float:
        """When the job finished (epoch seconds), or now if the record does not say."""
        if stored is None:
            return time.time()
        try:
            return datetime.fromisoformat(json.loads(stored)).timestamp()
        except (TypeError, ValueError):  # not a time: from now, then
            return time.time()
