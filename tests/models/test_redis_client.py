"""Every Redis client waits at most its timeout for a Redis that hangs
(SIGSTOP: connections open, nothing answers), and only once: no retry
multiplies the wait. On a redis-server of the test's own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from models.redis_client import open_redis
from models.settings import Redis, Settings
from tests.own_redis import HAS_REDIS_SERVER, OwnRedis

pytestmark = pytest.mark.skipif(not HAS_REDIS_SERVER, reason="needs redis-server")

TIMEOUT_S = 1.0
# One attempt waits one timeout; a retry would wait a second one.
ONE_ATTEMPT_S = 2 * TIMEOUT_S


@pytest.fixture
def hung(tmp_path: Path) -> Iterator[tuple[redis.Redis, Settings]]:
    """A client connected to a Redis that then stops answering, and settings
    for new clients of it."""
    own = OwnRedis(tmp_path)
    own.start()
    timeouts = Redis(socket_timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S)
    settings = Settings(redis_url=own.url, redis=timeouts)
    client = open_redis(settings)
    client.ping()  # its connection is open when Redis stops
    own.pause()
    try:
        yield client, settings
    finally:
        own.stop()
        client.close()


def seconds_to_fail(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        call()
    return time.monotonic() - started


def test_a_call_on_an_open_connection_fails_after_one_timeout(
    hung: tuple[redis.Redis, Settings],
) -> None:
    client, _ = hung
    assert seconds_to_fail(lambda: client.set("key", "value")) < ONE_ATTEMPT_S
    assert seconds_to_fail(lambda: client.get("key")) < ONE_ATTEMPT_S


def test_a_new_connection_and_a_subscription_fail_after_one_timeout(
    hung: tuple[redis.Redis, Settings],
) -> None:
    # The kernel accepts the connection for the stopped server; its
    # handshake is what goes unanswered.
    _, settings = hung
    assert seconds_to_fail(open_redis(settings).ping) < ONE_ATTEMPT_S
    subscriber = open_redis(settings).pubsub()  # the model catalog's kind of connection
    assert seconds_to_fail(lambda: subscriber.subscribe("channel")) < ONE_ATTEMPT_S
