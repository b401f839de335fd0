"""Shared fixtures: settings isolated per test (their own data folder, Redis key
prefix and queue names on the real local Redis), and API clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# The backend is chosen once per test process, before anything imports keras.
BACKEND = os.environ.setdefault("FITSERVE_KERAS_BACKEND", "jax")
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.settings import Queues, Settings  # noqa: E402

REDIS_URL = os.environ.get("FITSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API_KEY = "test-key"


def isolated_settings(data_dir: Path) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        data_dir=data_dir,
        redis_url=REDIS_URL,
        redis_prefix=f"fitserve-test-{tag}",
        queues=Queues(cpu=f"fitserve-test-{tag}.cpu", gpu=f"fitserve-test-{tag}.gpu"),
        api_keys=[API_KEY],
        keras_backend=BACKEND,  # type: ignore[arg-type]
    )


def forget_redis_state(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(f"{settings.redis_prefix}:*"))
    for queue in (settings.queues.cpu, settings.queues.gpu):
        keys += [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    client.delete(*keys)
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = isolated_settings(tmp_path / "var")
    yield settings
    forget_redis_state(settings)


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
