"""What the API does once at start (service.app.create_app), beside adopting
an earlier store layout: it removes what writes cut off left in the store, and
indexes the jobs an earlier release wrote."""

from __future__ import annotations

import json
import os
import time

import redis

from models.settings import Settings
from service.app import create_app

DAY_S = 86400
INCOMPLETE = "0123456789abcdef01234567"


def test_the_api_removes_what_writes_cut_off_left_when_it_starts(settings: Settings) -> None:
    store = settings.data_dir
    partial = store / "models" / "m" / "1" / f".tmp-{'a' * 32}"
    arrays = store / "datasets" / INCOMPLETE / "data.npz"
    for path in (partial, arrays):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half a write")
        then = time.time() - 2 * DAY_S
        os.utime(path, (then, then))
    young = store / "results" / f".tmp-{'b' * 32}"  # perhaps being written now
    young.parent.mkdir(parents=True)
    young.write_bytes(b"")

    create_app(settings)

    assert not partial.exists() and not arrays.exists() and young.exists()
    assert not (store / "datasets").exists()


def test_the_api_indexes_jobs_of_an_earlier_release_when_it_starts(
    settings: Settings, auth: dict[str, str]
) -> None:
    """Before the indexes, a job was its hash and an entry in `<prefix>:jobs`."""
    client = redis.Redis.from_url(settings.redis_url)
    job_id = "ab" * 16
    record = {"id": job_id, "kind": "train", "model": "old", "state": "succeeded",
              "history": {"loss": [0.5]}, "created_at": "2024-01-01T00:00:00.000Z"}  # fmt: skip
    prefix = settings.redis_prefix
    client.hset(f"{prefix}:job:{job_id}", mapping={k: json.dumps(v) for k, v in record.items()})
    client.zadd(f"{prefix}:jobs", {job_id: time.time()})
    client.close()

    api = create_app(settings).test_client()

    listed = api.get("/v1/jobs?state=succeeded&model=old", headers=auth).json["jobs"]
    assert [job["id"] for job in listed] == [job_id]
    assert listed[0]["history"] == {"loss": [0.5]}
