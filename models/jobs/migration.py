"""The one migration: jobs written before there were indexes by state and
by model (then a job was its hash and an entry in the job index), and
devices with training totals from before the set of devices. Every process
runs it at start; it runs once (a marker key says it did) and is idempotent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import cast

import redis

from models.jobs.codec import text
from models.jobs.keys import JobKeys
from models.jobs.scripts import JobScripts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    client: redis.Redis
    keys: JobKeys
    scripts: JobScripts

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
        if self.client.exists(self.keys.indexed):
            return 0
        for key in self.client.scan_iter(self.keys.training("*")):  # at start only
            self.client.sadd(self.keys.devices, self.keys.device_of(text(key)))
        indexed = 0
        position = 0
        while ids := [text(cast(bytes, job_id)) for job_id in
                      self.client.zrange(self.keys.index, position, position + 499)]:  # fmt: skip
            position += len(ids)
            indexed += self._index_batch(ids)
        self.client.set(self.keys.indexed, 1)
        if indexed:
            log.info("indexed %d jobs of an earlier release by state and model", indexed)
        return indexed

    def _index_batch(self, ids: list[str]) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), "model")
            models = pipe.execute()
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, model in zip(ids, models, strict=True):
                if model is None:
                    continue
                name = json.loads(model)
                keys = [self.keys.job(job_id), self.keys.model_index(name), self.keys.models,
                        *self.keys.index_keys(job_id)]  # fmt: skip
                self.scripts.index_earlier(keys=keys, args=[job_id, name], client=pipe)
            return sum(pipe.execute())
