"""The prediction log under `fitserve-api` (granian, two worker processes): the
writers run in the worker processes, and a process that stops writes what
it still holds."""

from __future__ import annotations

from pathlib import Path

import requests

from bench.slow_clients import one_row_body, publish_small_model
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.prediction_records import PredictionRecords, parse_since
from service.local_processes import Service, api_answers, free_port, settings_environment
from tests.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
REQUESTS = 40


def test_every_process_logs_and_writes_what_it_holds_when_stopped(
    settings: Settings, tmp_path: Path
) -> None:
    publish_small_model(settings, "logged")
    port = free_port()
    environment = settings_environment(settings, port) | {
        "FITSERVE_SERVER__WORKERS": "2",
        "FITSERVE_PREDICTION_LOG__SAMPLE": "1",
        # Nothing written on the writer's clock: only a stopping process writes.
        "FITSERVE_PREDICTION_LOG__FLUSH_S": "3600",
    }  # fmt: skip
    service = Service.entry_point(["fitserve-api"], environment, tmp_path / "api.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        service.wait_until(api_answers(base_url))
        # A connection each ("close"), so that both processes may take some.
        headers = {**AUTH, "Content-Type": "application/json", "Connection": "close"}
        for _ in range(REQUESTS):
            answer = requests.post(f"{base_url}/v1/models/logged:predict", data=one_row_body(),
                                   headers=headers, timeout=60)  # fmt: skip
            assert answer.status_code == 200, answer.text
    finally:
        assert service.stop(timeout_s=60) == 0, service.log_tail()

    records = PredictionRecords(open_blobs(settings), 86400)
    page, following = records.read("logged", parse_since("2000-01-01T00:00:00Z"), 1000)
    assert len(page) == REQUESTS and following is None
    assert all(record["inputs"] == [[0.1] * len(page[0]["inputs"][0])] for record in page)
