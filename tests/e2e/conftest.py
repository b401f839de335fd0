"""A live service for end-to-end tests: a real worker process and the API
under granian, on the real Redis, sharing one data folder. Every test in this
folder is marked `e2e`, so `pytest -m "not e2e"` runs the quick rest alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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
UPLOAD_LIMIT = 4 * 2**20  # above every example dataset


HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Live:
    base_url: str
    http: requests.Session
    settings: Settings
    grpc_address: str  # the API's gRPC (`127.0.0.1:<port>`)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def wait_for_job(
        self, job_id: str, until: tuple[str, ...] = FINAL_STATES, timeout_s: float = 180
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.http.get(self.url(f"/v1/jobs/{job_id}")).json()
            if job["state"] in until:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not in {until} after {timeout_s} s: {job}")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder: Path = tmp_path_factory.mktemp("live")
    settings = isolated_settings(folder / "var")
    port, grpc_port = free_port(), free_port()
    environment = settings_environment(settings, port, grpc_port)
    environment["FITSERVE_LIMITS__MAX_UPLOAD_BYTES"] = str(UPLOAD_LIMIT)
    worker = Service.entry_point(["fitserve-worker"], environment, folder / "worker.log")
    api = Service.entry_point(["fitserve-api"], environment, folder / "api.log")
    base_url = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {API_KEY}"
    try:
        api.wait_until(api_answers(base_url))
        worker.wait_until(worker_answers(settings.redis_url, worker.process.pid))
        yield Live(base_url, http, settings, f"127.0.0.1:{grpc_port}")
    finally:
        http.close()
        for service in (api, worker):
            service.stop()
        forget_redis_state(settings)
