"""`fitserve worker --supervised` (what `make run` starts): a worker killed by
SIGKILL is started again, and a job sent while no worker was alive runs on the
new one. The jobs go in through the app's own routes (in this process, on the
real Redis and the same store), as the API would send them."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from models.jobs.workers import WorkerRegistry
from models.settings import Settings
from service.app import create_app
from service.local_processes import Service, free_port, settings_environment
from tests.conftest import API_KEY

X = np.random.default_rng(11).normal(size=(32, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 2, "batch_size": 8},
}
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def children(pid: int) -> set[int]:
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}  # fmt: skip


def registered(registry: WorkerRegistry, pid: int) -> bool:
    return any(worker["pid"] == pid for worker in registry.online())


def wait_for(
    what: str, ready: Callable[[], bool], service: Service, timeout_s: float = 120
) -> None:
    try:
        service.wait_until(ready, timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


@pytest.fixture
def supervised(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    environment = settings_environment(settings, free_port())
    service = Service.entry_point(["fitserve", "worker", "--supervised"], environment,
                                  tmp_path / "supervisor.log")  # fmt: skip
    try:
        yield service
    finally:
        service.stop(timeout_s=60)


def test_a_killed_worker_comes_back_and_runs_the_job_sent_meanwhile(
    settings: Settings, supervised: Service
) -> None:
    api: FlaskClient = create_app(
        settings.model_copy(update={"preload_models": False})
    ).test_client()
    registry = WorkerRegistry(api.application.extensions["fitserve"].redis, settings.redis_prefix)
    supervisor = supervised.process.pid
    wait_for("no worker started", lambda: len(children(supervisor)) == 1, supervised)
    (first,) = children(supervisor)
    wait_for("the worker never registered", lambda: registered(registry, first), supervised)
    queues = api.get("/v1/workers", headers=AUTH).json["queues"]
    assert queues == {settings.queues.cpu: {"workers": 1}, settings.queues.gpu: {"workers": 0}}

    os.kill(first, signal.SIGKILL)
    wait_for("the dead worker lingers", lambda: first not in children(supervisor), supervised, 10)
    dataset = api.post("/v1/datasets", headers=AUTH,
                       json={"x": X.tolist(), "y": X.sum(axis=1).tolist()}).json["id"]  # fmt: skip
    job = api.post("/v1/jobs", headers=AUTH,
                   json={"model": "supervised", "spec": SPEC, "dataset": dataset}).json  # fmt: skip
    assert job["state"] == "queued"

    # Started again within 10 s of its death (1 s the first time); ready later.
    wait_for("no second worker", lambda: len(children(supervisor) - {first}) == 1, supervised, 10)
    (second,) = children(supervisor)
    wait_for("the new worker never registered", lambda: registered(registry, second), supervised)

    def state() -> str:
        return str(api.get(f"/v1/jobs/{job['id']}", headers=AUTH).json["state"])

    wait_for("the job never ran", lambda: state() in ("succeeded", "failed"), supervised)
    assert state() == "succeeded"
    log = supervised.log_path.read_text(errors="replace")
    assert f"worker pid {first} was killed by SIGKILL" in log, supervised.log_tail()
    assert "restart 1 in 1 s" in log and f"worker started: pid {second} (restart 1)" in log

    # SIGTERM stops the supervisor and, first, its worker, which exits cleanly.
    assert supervised.stop(timeout_s=60) == 0, supervised.log_tail()
    assert not Path(f"/proc/{second}").exists()
