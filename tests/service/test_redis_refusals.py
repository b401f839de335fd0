"""A Redis that answers but refuses to write, for a state of its own that
someone must fix (out of memory, a read-only replica, snapshots that fail):
job routes answer 503 saying which, never 500. Each state made for real on a
redis-server of the test's own."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from models.settings import Settings
from service.app import create_app
from service.local_processes import free_port
from tests.own_redis import HAS_REDIS_SERVER, OwnRedis

pytestmark = pytest.mark.skipif(not HAS_REDIS_SERVER, reason="needs redis-server")

SPEC = {
    "input_shape": [2],
    "layers": [{"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 2},
}
DATASET = {"x": [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], "y": [1.0, 1.0, 2.0]}


def read_only(own: OwnRedis, client: redis.Redis) -> None:
    client.replicaof("127.0.0.1", free_port())  # a primary nobody runs: it stays read-only


def out_of_memory(own: OwnRedis, client: redis.Redis) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)


def snapshots_failing(own: OwnRedis, client: redis.Redis) -> None:
    # Its folder gone, a snapshot cannot be written (even by root); with a save
    # point set, Redis then refuses writes (stop-writes-on-bgsave-error).
    shutil.rmtree(own.folder)
    client.bgsave()
    deadline = time.monotonic() + 10
    while client.info("persistence")["rdb_last_bgsave_status"] != "err":
        assert time.monotonic() < deadline, "the snapshot did not fail"
        time.sleep(0.05)


REFUSALS: dict[str, tuple[Callable[[OwnRedis, redis.Redis], None], str]] = {
    "READONLY": (read_only, "read-only replica"),
    "OOM": (out_of_memory, "out of memory"),
    "MISCONF": (snapshots_failing, "cannot save its snapshots"),
}


def body(response: TestResponse) -> dict[str, Any]:
    return dict(json.loads(response.data))


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnRedis]:
    # A save point, so that a failed snapshot stops writes (MISCONF).
    server = OwnRedis(tmp_path / "redis", "--save", "3600 1")
    server.folder.mkdir()
    server.start()
    yield server
    server.kill()  # a Redis that cannot save would refuse to stop on SIGTERM


@pytest.fixture
def api(settings: Settings, own: OwnRedis) -> Iterator[FlaskClient]:
    app = create_app(settings.model_copy(update={"redis_url": own.url}))
    yield app.test_client()
    app.extensions["fitserve"].catalog.close()


@pytest.mark.parametrize("code", list(REFUSALS))
def test_a_redis_that_refuses_writes_is_a_503_that_says_why(
    code: str, own: OwnRedis, api: FlaskClient, auth: dict[str, str]
) -> None:
    dataset = api.post("/v1/datasets", headers=auth, json=DATASET)
    assert dataset.status_code == 201, dataset.text
    job = {"model": "m", "spec": SPEC, "dataset": body(dataset)["id"]}
    submitted = api.post("/v1/jobs", headers=auth, json=job)
    assert submitted.status_code == 202, submitted.text
    refuse, why = REFUSALS[code]
    refuse(own, own.client())

    for answer in (
        api.post("/v1/jobs", headers=auth, json=job),
        api.post(f"/v1/jobs/{body(submitted)['id']}:cancel", headers=auth),
    ):
        assert answer.status_code == 503, answer.text
        message = body(answer)["error"]["message"]
        assert "Redis" in message and why in message, message
