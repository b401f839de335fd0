"""Redis dies (SIGKILL) under a running service and comes back: a Redis of
our own on another port, with the append-only file Redis needs to keep what
it acknowledged; never the shared one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import isolated_settings
from tests.e2e.cluster import SLOW_DATASET, SLOW_X, Cluster, slow_spec
from tests.own_redis import HAS_REDIS_SERVER, OwnRedis

X = SLOW_X
SPEC = slow_spec(epochs=14, shuffle=False)  # longer than the outage
QUICK = slow_spec(epochs=1, batch_size=64)

pytestmark = pytest.mark.skipif(not HAS_REDIS_SERVER, reason="needs redis-server")


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[Cluster, OwnRedis]]:
    own = OwnRedis(tmp_path)
    own.start()
    settings = isolated_settings(tmp_path / "var").model_copy(update={"redis_url": own.url})
    cluster = Cluster(settings, tmp_path)
    try:
        worker = cluster.start_worker(wait=False)  # its start overlaps the API's
        cluster.start_api()
        cluster.wait_answers(worker)
        yield cluster, own
    finally:
        cluster.stop()
        if own.server is not None:
            own.server.stop()


def test_service_rides_out_a_redis_crash(outage: tuple[Cluster, OwnRedis]) -> None:
    cluster, own = outage
    dataset = cluster.upload(SLOW_DATASET)
    served = cluster.wait_until_final(cluster.submit("served", QUICK, dataset)["id"])
    assert served["state"] == "succeeded", served["error"]
    instances = {"instances": X[:4].tolist()}
    before = cluster.http.post(cluster.url("/v1/models/served:predict"), json=instances)
    assert before.status_code == 200

    running = cluster.submit("running-at-crash", SPEC, dataset)
    cluster.wait_for(running["id"], lambda job: (job["progress"]["epoch"] or 0) >= 1)
    queued = cluster.submit("queued-at-crash", QUICK, dataset)  # acknowledged: 202
    own.kill()

    refused = cluster.http.post(cluster.url("/v1/jobs"),
                                json={"model": "m", "spec": QUICK, "dataset": dataset})  # fmt: skip
    assert refused.status_code == 503
    assert "Redis" in refused.json()["error"]["message"]
    ready = cluster.http.get(cluster.url("/readyz"))
    assert ready.status_code == 503 and "Redis" in ready.text
    # Outlast the job lease, so the running job's worker loses it.
    outage_ends = time.monotonic() + 5
    while time.monotonic() < outage_ends:
        during = cluster.http.post(cluster.url("/v1/models/served:predict"), json=instances)
        assert during.status_code == 200
        assert during.json() == before.json()
        time.sleep(0.2)

    own.start()  # the same port and append-only file
    for job in (running, queued):
        finished = cluster.wait_until_final(job["id"], timeout_s=180)
        assert finished["state"] == "succeeded", finished
    # The running job's lease lapsed during the outage: its worker stopped it,
    # and it was taken up again from its checkpoint.
    resumed = cluster.job(running["id"])
    assert resumed["attempts"] == 2
    assert resumed["restarts"][0]["resumed_from_epoch"] >= 1
    assert len(resumed["history"]["loss"]) == 14
    assert cluster.published("running-at-crash") == [1]
    assert cluster.published("queued-at-crash") == [1]
    assert cluster.http.get(cluster.url("/readyz")).status_code == 200
    after = cluster.wait_until_final(cluster.submit("after-crash", QUICK, dataset)["id"])
    assert after["state"] == "succeeded", after["error"]
