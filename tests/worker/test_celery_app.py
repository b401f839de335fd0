"""Celery's connections to the broker wait no longer than every other Redis
client: a job sent to a Redis that hangs (SIGSTOP) fails within seconds,
where kombu's default waits for ever. On a redis-server of the test's own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import kombu.exceptions
import pytest

from models.settings import Settings
from tests.own_redis import HAS_REDIS_SERVER, OwnRedis
from worker.celery_app import TRAIN_TASK, make_celery

pytestmark = pytest.mark.skipif(not HAS_REDIS_SERVER, reason="needs redis-server")

# What a job route has to answer in while Redis hangs.
ANSWER_S = 5.0


def test_sending_to_a_broker_that_hangs_fails_within_seconds(
    settings: Settings, tmp_path: Path
) -> None:
    own = OwnRedis(tmp_path)
    own.start()
    app = make_celery(settings.model_copy(update={"redis_url": own.url}))
    queue = settings.queues.cpu
    outcome: list[BaseException | float] = []

    def send() -> None:
        started = time.monotonic()
        try:
            app.send_task(TRAIN_TASK, args=["job"], queue=queue)
        except BaseException as exc:  # kept for the assertions below
            outcome.append(exc)
        outcome.append(time.monotonic() - started)

    try:
        app.send_task(TRAIN_TASK, args=["job"], queue=queue)  # a pooled connection
        own.pause()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(timeout=3 * ANSWER_S)
        assert not sender.is_alive(), "sending to a Redis that hangs never returned"
    finally:
        own.stop()  # resumed first: a sender still waiting gets its answer
        app.close()
    error, took = outcome
    assert isinstance(error, kombu.exceptions.OperationalError), error
    assert isinstance(took, float) and took < ANSWER_S
