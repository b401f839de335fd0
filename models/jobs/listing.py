"""Listing and counting jobs through their indexes.

Jobs are indexed newest first overall, by state and by model (sorted sets
scored by creation time, moved between states by the scripts that change
states), so a filtered listing or a count reads only what it returns. An
entry whose job has expired is dropped when a listing meets it.
"""

from __future__ import annotations

import json
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from models.jobs.codec import STATES, text
from models.jobs.keys import JobKeys
from models.jobs.records import JobRecords
from models.records import JobRecord


@dataclass(frozen=True)
class Listing:
    client: redis.Redis
    keys: JobKeys
    records: JobRecords

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
            ids = [text(cast(bytes, job_id)) for job_id in
                   self.client.zrevrange(walked, position, position + batch - 1)]  # fmt: skip
            if not ids:
                break
            wanted = self._matching(ids, check, gone)
            chosen = [job_id for job_id in ids if job_id in wanted][:needed]
            records = dict(zip(chosen, self.records.read(chosen), strict=True))
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

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state: the size of each state's index.
        (A job that expired counts until forget_expired drops its entry.)"""
        with self.client.pipeline(transaction=False) as pipe:
            for index in self.keys.state_indexes:
                pipe.zcard(index)
            sizes = pipe.execute()
        return {state: int(size) for state, size in zip(STATES, sizes, strict=True) if size}

    def _walk_plan(
        self, state: str | None, model: str | None
    ) -> tuple[str, tuple[str, bytes] | None]:
        """The index a listing walks, and the (field, stored value) each of its
        jobs must also have, if any."""
        keys = self.keys
        if state is None:
            return (keys.index if model is None else keys.model_index(model)), None
        if model is None:
            return keys.state_index(state), None
        by_state, by_model = keys.state_index(state), keys.model_index(model)
        with self.client.pipeline(transaction=False) as pipe:
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
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), check[0])
            values = pipe.execute()
        gone.extend(job_id for job_id, value in zip(ids, values, strict=True) if value is None)
        return {job_id for job_id, value in zip(ids, values, strict=True) if value == check[1]}

    def _drop_entries(self, ids: Sequence[str], *indexes: str) -> None:
        """Forget index entries of jobs that are gone (expired, or deleted)."""
        if not ids:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for index in {self.keys.index, *self.keys.state_indexes, *indexes}:
                pipe.zrem(index, *ids)
            pipe.execute()


def _matches(job: JobRecord, state: str | None, model: str | None) -> bool:
    # What the index walked says already; read again, it costs nothing.
    return (state is None or job["state"] == state) and (model is None or job["model"] == model)
