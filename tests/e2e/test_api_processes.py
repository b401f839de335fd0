"""The API's worker processes under `fitserve-api` (granian): one that dies is
replaced, and its live gauges leave /metrics with it (service.main's `app()`
drops them; gunicorn's child_exit hook did before)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.slow_clients import one_row_body, publish_small_model
from models.settings import Settings
from service.local_processes import Service, api_answers, free_port, settings_environment
from tests.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def children(pid: int) -> set[int]:
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}  # fmt: skip


def loaded_models(base_url: str) -> float:
    scraped = requests.get(f"{base_url}/metrics", headers=AUTH, timeout=30).text
    samples = [sample for family in text_string_to_metric_families(scraped)
               for sample in family.samples]  # fmt: skip
    return next(sample.value for sample in samples if sample.name == "fitserve_loaded_models")


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[Service, str]]:
    port = free_port()
    service = Service.entry_point(["fitserve-api"], settings_environment(settings, port),
                                  tmp_path / "api.log")  # fmt: skip
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        # Past granian's own 30 s for a worker that does not stop (service.main).
        assert service.stop(timeout_s=60) == 0, service.log_tail()


def test_a_killed_api_worker_is_replaced_and_its_gauges_leave_metrics(
    settings: Settings, api: tuple[Service, str]
) -> None:
    publish_small_model(settings, "gauged")
    service, base_url = api
    service.wait_until(api_answers(base_url))
    predict = f"{base_url}/v1/models/gauged:predict"
    headers = {**AUTH, "Content-Type": "application/json"}

    def predicts() -> bool:
        return requests.post(predict, data=one_row_body(), headers=headers, timeout=60).ok

    assert predicts()
    assert loaded_models(base_url) == 1
    (first,) = children(service.process.pid)
    os.kill(first, signal.SIGKILL)
    service.wait_until(lambda: len(children(service.process.pid) - {first}) == 1)
    service.wait_until(api_answers(base_url))
    assert predicts()
    # The new process's model only: the dead one's gauge file is gone.
    assert loaded_models(base_url) == 1
    assert (
        "Spawning worker-1"
        in service.log_path.read_text(errors="replace").split("Unexpected exit from worker-1")[-1]
    )
