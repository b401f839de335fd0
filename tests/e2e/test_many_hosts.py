"""Two hosts that share only Redis and an S3 store (a real SeaweedFS): API A
and worker 1 with one data folder, API B and worker 2 with another. Whatever
one host publishes, checkpoints or stores, the other serves, resumes or reads.

The delays between a change on one host and the other host answering with it
are printed, not asserted: the machines that run this suite are shared."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.storage.blobs import open_blobs
from service.local_processes import SeaweedFS
from tests.conftest import forget_redis_state, in_bucket, isolated_settings
from tests.e2e.cluster import SLOW_DATASET, SLOW_X, Cluster, slow_spec

QUICK = {
    "input_shape": [16],
    "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 512},
    "seed": 3,
}
ROWS = SLOW_X[:5].tolist()


class Hosts:
    def __init__(self, a: Cluster, b: Cluster) -> None:
        self.a, self.b = a, b
        self.dataset = ""

    def stop_workers(self) -> None:
        for host in (self.a, self.b):
            for worker in host.workers:
                worker.stop()
            host.workers.clear()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS) -> Iterator[Hosts]:
    folder = tmp_path_factory.mktemp("hosts")
    shared = in_bucket(isolated_settings(folder / "unused"), seaweedfs)

    def host(name: str) -> Cluster:
        settings = shared.model_copy(update={"data_dir": folder / name / "var"})
        return Cluster(settings, _folder(folder / name))

    a, b = host("a"), host("b")
    try:
        a.start_api()
        b.start_api()
        hosts = Hosts(a, b)
        hosts.dataset = a.upload(SLOW_DATASET)
        yield hosts
    finally:
        a.stop()
        b.stop()
        forget_redis_state(shared)


@pytest.fixture
def both(hosts: Hosts) -> Iterator[Hosts]:
    yield hosts
    hosts.stop_workers()


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def predict(host: Cluster, model: str, version: int | None = None) -> Any:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "")
    return host.http.post(host.url(f"{path}:predict"), json={"instances": ROWS})


def wait_for(answered: Any, timeout_s: float = 30) -> float:
    """Seconds until `answered()` is true; fails after `timeout_s`."""
    started = time.monotonic()
    while not answered():
        assert time.monotonic() - started < timeout_s, "no answer"
        time.sleep(0.01)
    return time.monotonic() - started


def test_what_one_host_trains_the_other_serves_and_deletes(both: Hosts) -> None:
    a, b = both.a, both.b
    worker_1 = a.start_worker()

    def train_through_a() -> int:
        done = a.wait_until_final(a.submit("shared", QUICK, both.dataset)["id"])
        assert done["state"] == "succeeded", done["error"]
        assert done["worker"].startswith(f"fitserve-cpu-{worker_1.process.pid}@")
        return int(done["result"]["version"])

    def b_serves(version: int) -> bool:
        return predict(b, "shared").headers.get("Fitserve-Model-Version") == str(version)

    # B serves version 1 (its first model: it imports Keras on the way), then
    # learns of version 2 as a warm replica would.
    assert train_through_a() == 1
    wait_for(lambda: b_serves(1), timeout_s=60)
    version = train_through_a()
    assert version == 2
    served_after = wait_for(lambda: b_serves(version))
    on_b, on_a = predict(b, "shared").json(), predict(a, "shared").json()
    assert on_b["predictions"] == on_a["predictions"]
    # Host B's copy of the model is its own: its data folder is a cache.
    cached = b.settings.data_dir / "cache" / "models" / "shared"
    assert sorted(path.name for path in cached.iterdir()) == ["1", "2"]
    assert not (a.settings.data_dir / "models").exists()

    # A batch prediction sent through B, its result read through A.
    sent = b.http.post(b.url("/v1/models/shared:batchPredict"), json={"dataset": both.dataset})
    assert sent.status_code == 202, sent.text
    finished = a.wait_until_final(sent.json()["id"])
    assert finished["state"] == "succeeded", finished["error"]
    result = a.http.get(a.url(f"/v1/jobs/{finished['id']}/result"),
                        headers={"Accept": "application/x-npy"})  # fmt: skip
    assert result.status_code == 200, result.text
    outputs = np.load(io.BytesIO(result.content))
    assert outputs.shape == (len(SLOW_X), 1)
    np.testing.assert_allclose(outputs[:5], on_a["predictions"], rtol=1e-5, atol=1e-6)

    # Deleted through A: B stops serving it.
    assert a.http.delete(a.url(f"/v1/models/shared/versions/{version}")).status_code == 204
    gone_after = wait_for(lambda: predict(b, "shared", version).status_code == 404)
    assert b_serves(1)  # the latest again
    print(
        f"\nmany hosts: B served the new version {served_after * 1000:.0f} ms after A "
        f"reported success, and stopped {gone_after * 1000:.0f} ms after A deleted it"
    )


def test_a_job_whose_host_died_resumes_on_the_other_host(both: Hosts) -> None:
    a, b = both.a, both.b
    worker_1 = a.start_worker()
    job = a.submit("resumed-elsewhere", slow_spec(), both.dataset)
    a.wait_for(job["id"], lambda job: (job["progress"]["epoch"] or 0) >= 3)
    a.kill(worker_1)

    worker_2 = b.start_worker(wait=False)
    resumed = b.wait_until_final(job["id"])
    assert resumed["state"] == "succeeded", resumed["error"]
    assert resumed["worker"].startswith(f"fitserve-cpu-{worker_2.process.pid}@")
    assert resumed["resumed_from_epoch"] > 0
    assert len(resumed["history"]["loss"]) == 10
    wait_for(lambda: b.versions("resumed-elsewhere") == [1])
    # Its checkpoint lived in the store, and the sweeper forgets it once done.
    checkpoints = open_blobs(b.settings)
    wait_for(lambda: not list(checkpoints.keys("checkpoints/")), timeout_s=60)


def test_two_hosts_publishing_at_once_never_share_a_number(both: Hosts) -> None:
    a, b = both.a, both.b
    started = [a.start_worker(wait=False), b.start_worker(wait=False)]
    for host, worker in zip((a, b), started, strict=True):  # side by side: a start takes seconds
        host.wait_answers(worker)
    rounds, versions, on_two_workers = 20, [], 0
    for _ in range(rounds):
        pair = [a.submit("raced", QUICK, both.dataset), b.submit("raced", QUICK, both.dataset)]
        done = [a.wait_until_final(job["id"]) for job in pair]
        assert [job["state"] for job in done] == ["succeeded"] * 2, [j["error"] for j in done]
        versions += [job["result"]["version"] for job in done]
        on_two_workers += done[0]["worker"] != done[1]["worker"]
    assert sorted(versions) == list(range(1, 2 * rounds + 1))
    wait_for(lambda: a.versions("raced") == list(range(1, 2 * rounds + 1)))
    print(f"\nmany hosts: {rounds} pairs of jobs, {on_two_workers} of them on both "
          f"workers at once: versions 1-{2 * rounds}, none twice")  # fmt: skip
