"""Fixtures for the worker's unit tests: the real Redis, under the per-test key
prefix and queue names of the shared `settings` fixture (tests/conftest.py),
which also deletes every key and queue list a test wrote."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from models.jobs.store import JobStore
from models.settings import Settings
from worker.celery_app import make_celery


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def app(settings: Settings) -> Iterator[Celery]:
    """A Celery app on the real broker, sending to this test's queues."""
    app = make_celery(settings)
    yield app
    app.close()


@pytest.fixture
def jobs(settings: Settings, redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client, settings.redis_prefix)


def wait_until_orphaned(jobs: JobStore, job_id: str, timeout_s: float = 10.0) -> None:
    """Wait for job `job_id`'s lease to run out, as it does when its worker dies."""
    deadline = time.monotonic() + timeout_s
    while job_id not in jobs.orphans():
        assert time.monotonic() < deadline, f"the lease of job {job_id} never lapsed"
        time.sleep(0.02)


def sent(client: redis.Redis, queue: str) -> list[tuple[str, list[Any]]]:
    """(task, args) of every message waiting on `queue`, oldest first."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # LPUSH'd: newest first
        message = json.loads(raw)
        assert message["properties"]["body_encoding"] == "base64"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages
