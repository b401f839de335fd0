"""`fitserve label`, `fitserve export` and `fitserve predictions` against a
real API process (granian) that logs every prediction, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from bench.slow_clients import ONE_ROW_FEATURES, publish_small_model
from models.settings import Settings
from service.local_processes import BIN, Service, api_answers, free_port, settings_environment
from tests.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "ops"


Finished = subprocess.CompletedProcess[str]


@dataclass
class Api:
    base_url: str

    def fitserve(self, *arguments: str, cwd: Path | None = None) -> Finished:
        environment = {**os.environ, "FITSERVE_URL": self.base_url, "FITSERVE_API_KEY": API_KEY,
                       "COLUMNS": "200"}  # fmt: skip
        return subprocess.run([str(BIN / "fitserve"), *arguments], env=environment, cwd=cwd,
                              text=True, capture_output=True, timeout=300)  # fmt: skip


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    """An API process with two versions of MODEL and every prediction logged."""
    publish_small_model(settings, MODEL)
    publish_small_model(settings, MODEL)
    port = free_port()
    environment = settings_environment(settings, port) | {
        "FITSERVE_PREDICTION_LOG__SAMPLE": "1",
        # One process: a read flushes that process's log, so it holds every record.
        "FITSERVE_SERVER__WORKERS": "1",
    }  # fmt: skip
    service = Service.entry_point(["fitserve-api"], environment, tmp_path / "api.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        service.wait_until(api_answers(base_url))
        yield Api(base_url)
    finally:
        service.stop(timeout_s=60)


def test_label_moves_lists_shows_and_deletes(api: Api) -> None:
    moved = api.fitserve("label", MODEL, "stable", "1")
    assert moved.returncode == 0, moved.stderr
    assert "stable -> version 1" in moved.stderr
    again = api.fitserve("label", MODEL, "stable", "2")
    assert again.returncode == 0 and "(was 1)" in again.stderr, again.stderr
    listing = api.fitserve("label", MODEL)
    assert listing.returncode == 0 and "stable" in listing.stdout
    assert listing.stdout.split("stable")[1].split()[1] == "2"  # "│ 2 │" in its row
    shown = api.fitserve("label", MODEL, "stable")
    assert shown.returncode == 0 and "stable -> version 2" in shown.stdout
    assert shown.stdout.count("full") == 2  # both moves, with the key's role

    # The API refuses what the CLI passes on: exit 2 with its message.
    absent = api.fitserve("label", MODEL, "stable", "9")
    assert absent.returncode == 2 and "422" in absent.stderr and "no version 9" in absent.stderr
    refused = requests.delete(f"{api.base_url}/v1/models/{MODEL}/versions/2", headers=AUTH)
    assert refused.status_code == 409 and "'stable'" in refused.json()["error"]["message"]
    row = {"instances": [[0.1] * ONE_ROW_FEATURES]}
    predicted = requests.post(f"{api.base_url}/v1/models/{MODEL}/labels/stable:predict",
                              json=row, headers=AUTH)  # fmt: skip
    assert predicted.headers["Fitserve-Model-Version"] == "2"

    deleted = api.fitserve("label", MODEL, "stable", "--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert "stable" not in api.fitserve("label", MODEL).stdout
    gone = api.fitserve("label", MODEL, "stable", "--delete")
    assert gone.returncode == 2 and "404" in gone.stderr


def test_export_downloads_the_keras_file(api: Api, tmp_path: Path) -> None:
    import keras

    named = api.fitserve("export", MODEL, "1", "--format", "keras", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    written = [path for path in tmp_path.iterdir() if path.suffix == ".keras"]
    assert len(written) == 1 and not list(tmp_path.glob(".*.partial"))
    chosen = tmp_path / "chosen.keras"
    assert api.fitserve("export", MODEL, "1", "-o", str(chosen)).returncode == 0
    assert chosen.read_bytes() == written[0].read_bytes()
    model = keras.saving.load_model(chosen, safe_mode=True)
    row = np.full((1, ONE_ROW_FEATURES), 0.1, dtype=np.float32)
    served = requests.post(f"{api.base_url}/v1/models/{MODEL}/versions/1:predict",
                           json={"instances": row.tolist()}, headers=AUTH).json()  # fmt: skip
    np.testing.assert_allclose(model.predict(row, verbose=0), served["predictions"], atol=1e-5)
    unknown = api.fitserve("export", MODEL, "7", cwd=tmp_path)
    assert unknown.returncode == 2 and "404" in unknown.stderr


def test_predictions_reads_the_log_back(api: Api) -> None:
    rows = [[0.1 * (index + 1)] * ONE_ROW_FEATURES for index in range(3)]
    for row in rows:
        answer = requests.post(f"{api.base_url}/v1/models/{MODEL}:predict",
                               json={"instances": [row]}, headers=AUTH)  # fmt: skip
        assert answer.status_code == 200
    as_json = api.fitserve("predictions", MODEL, "--json", "--since", "2000-01-01T00:00:00Z")
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    # As the model saw them: float32, so 0.3 comes back as 0.30000001.
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        np.testing.assert_allclose(record["inputs"], [row], rtol=1e-6)
    assert all(record["version"] == 2 for record in records)
    limited = api.fitserve("predictions", MODEL, "--json", "--limit", "2")
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 2
    table = api.fitserve("predictions", MODEL)
    rows_shown = [line for line in table.stdout.splitlines() if line.startswith("│")]
    assert table.returncode == 0 and len(rows_shown) == 3, table.stdout
    bad = api.fitserve("predictions", MODEL, "--since", "yesterday")
    assert bad.returncode == 2 and "422" in bad.stderr
