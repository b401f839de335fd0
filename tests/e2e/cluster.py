"""A service whose workers the fault tests can kill and start again: the API
under granian, any number of real worker processes, one data folder, and
short job leases so a dead worker's job comes back within seconds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

from models.settings import Settings
from service.local_processes import (
    Service,
    api_answers,
    free_port,
    settings_environment,
    worker_answers,
)
from tests.conftest import API_KEY, forget_redis_state, isolated_settings

FINAL_STATES = ("succeeded", "failed", "cancelled")
LEASE_S = 3.0

# A job slow enough to be caught mid-way: a wide network, a small batch, so
# one epoch takes most of a second here.
SLOW_X = np.random.default_rng(0).normal(size=(4000, 16)).round(4)
SLOW_Y = SLOW_X @ np.random.default_rng(1).normal(size=16)
SLOW_DATASET = {"x": SLOW_X.tolist(), "y": SLOW_Y.tolist()}


def slow_spec(**fit: Any) -> dict[str, Any]:
    return {
        "input_shape": [16],
        "layers": [
            {"type": "dense", "units": 1024, "activation": "relu"},
            {"type": "dense", "units": 1024, "activation": "relu"},
            {"type": "dense", "units": 1},
        ],  # fmt: skip
        "compile": {"loss": "mse", "optimizer": "adam"},
        "fit": {"epochs": 10, "batch_size": 4, "shuffle": True, **fit},
        "seed": 5,
    }


class Cluster:
    def __init__(self, settings: Settings, folder: Path, **environment: str) -> None:
        self.settings = settings
        self.folder = folder
        port = free_port()
        self.environment = {
            **settings_environment(settings, port),
            "FITSERVE_JOBS__LEASE_S": str(LEASE_S),
            **environment,
        }
        self.base_url = f"http://127.0.0.1:{port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {API_KEY}"
        self.api: Service | None = None
        self.workers: list[Service] = []
        self.started = 0
        self.dataset = ""  # a dataset the tests share, once uploaded

    def start_api(self) -> None:
        self.api = Service.entry_point(["fitserve-api"], self.environment, self.folder / "api.log")
        self.api.wait_until(api_answers(self.base_url))

    def start_worker(self, wait: bool = True) -> Service:
        """A new worker process; with `wait`, once it answers on the broker.
        (A worker busy with a job does not answer until the job ends: the solo
        pool runs the job on the thread that would reply.)"""
        self.started += 1
        log = self.folder / f"worker-{self.started}.log"
        worker = Service.entry_point(["fitserve-worker"], self.environment, log)
        self.workers.append(worker)
        if wait:
            self.wait_answers(worker)
        return worker

    def start_workers(self, count: int) -> list[Service]:
        """`count` new workers, started side by side (a start takes seconds),
        once each answers on the broker."""
        started = [self.start_worker(wait=False) for _ in range(count)]
        for worker in started:
            self.wait_answers(worker)
        return started

    def wait_answers(self, worker: Service) -> None:
        worker.wait_until(worker_answers(self.settings.redis_url, worker.process.pid))

    def kill(self, worker: Service) -> None:
        """SIGKILL: no handler runs, no message is acknowledged, nothing is cleaned up."""
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def stop(self) -> None:
        self.http.close()
        for service in [*self.workers, *([self.api] if self.api else [])]:
            service.stop()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(self.url(f"/v1/jobs/{job_id}")).json())

    def wait_for(
        self, job_id: str, done: Callable[[dict[str, Any]], bool], timeout_s: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        job = self.job(job_id)
        while not done(job):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still not there after {timeout_s} s: {job}")
            time.sleep(0.02)
            job = self.job(job_id)
        return job

    def wait_until_final(self, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
        return self.wait_for(job_id, lambda job: job["state"] in FINAL_STATES, timeout_s)

    def upload(self, body: dict[str, Any]) -> str:
        response = self.http.post(self.url("/v1/datasets"), json=body)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    def submit(self, model: str, spec: dict[str, Any], dataset: str) -> dict[str, Any]:
        response = self.http.post(
            self.url("/v1/jobs"), json={"model": model, "spec": spec, "dataset": dataset}
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def versions(self, model: str) -> list[int]:
        listing = self.http.get(self.url("/v1/models")).json()["models"]
        return next((entry["versions"] for entry in listing if entry["name"] == model), [])

    def published(self, model: str, timeout_s: float = 30) -> list[int]:
        """The model's versions once the API lists one: its catalog hears of a
        version a moment after the job that published it has succeeded."""
        deadline = time.monotonic() + timeout_s
        while not (versions := self.versions(model)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return versions

    def worker_logs(self) -> str:
        return "\n".join(worker.log_path.read_text(errors="replace") for worker in self.workers)


@contextmanager
def running_cluster(folder: Path, **environment: str) -> Iterator[Cluster]:
    """A cluster in `folder` with its API up and SLOW_DATASET uploaded (as
    `dataset`), no workers yet; everything stopped and its Redis keys gone after."""
    settings = isolated_settings(folder / "var")
    cluster = Cluster(settings, folder, **environment)
    try:
        cluster.start_api()
        cluster.dataset = cluster.upload(SLOW_DATASET)
        yield cluster
    finally:
        cluster.stop()
        forget_redis_state(settings)
