"""Load: 16 clients at once send 200 training jobs and 10,000 predictions to
the real server. Every request is answered, every job finishes, nothing is
lost. The figures are printed (`pytest -s`), not asserted: the machines are
shared and timing is noise here; bench/ measures speed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import requests

from tests.conftest import API_KEY
from tests.e2e.conftest import FINAL_STATES, Live

CLIENTS = 16
JOBS = 200
PREDICTIONS = 10_000
X = np.random.default_rng(9).normal(size=(48, 4)).round(3)
SPEC = {
    "input_shape": [4],
    "layers": [
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "sigmoid"},
    ],  # fmt: skip
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
    "fit": {"epochs": 2, "batch_size": 16},
    "seed": 0,
}


@dataclass
class ClientLog:
    predict_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def client(live: Live, index: int, dataset: str, jobs: int, predictions: int) -> ClientLog:
    log = ClientLog()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {API_KEY}"
    # The jobs spread evenly through each client's predictions.
    submit_at = set(np.linspace(0, predictions, jobs, endpoint=False).astype(int))
    with http:
        for step in range(predictions):
            if step in submit_at:
                body = {"model": f"load-{index}-{step}", "spec": SPEC, "dataset": dataset}
                started = time.perf_counter()
                response = http.post(live.url("/v1/jobs"), json=body, timeout=60)
                log.submit_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code == 202:
                    log.jobs.append(response.json()["id"])
                else:
                    log.failures.append(f"submit {response.status_code}: {response.text[:200]}")
            sample = {"instances": [X[step % len(X)].tolist()]}
            started = time.perf_counter()
            response = http.post(live.url("/v1/models/load-target:predict"), json=sample,
                                 timeout=60)  # fmt: skip
            log.predict_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or len(response.json()["predictions"]) != 1:
                log.failures.append(f"predict {response.status_code}: {response.text[:200]}")
    return log


def test_two_hundred_jobs_and_ten_thousand_predictions_from_sixteen_clients(live: Live) -> None:
    body = {"x": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()}
    dataset = live.http.post(live.url("/v1/datasets"), json=body).json()["id"]
    target = {"model": "load-target", "spec": SPEC, "dataset": dataset}
    first = live.wait_for_job(live.http.post(live.url("/v1/jobs"), json=target).json()["id"])
    assert first["state"] == "succeeded", first["error"]

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        shares = [(JOBS * (i + 1) // CLIENTS - JOBS * i // CLIENTS,
                   PREDICTIONS * (i + 1) // CLIENTS - PREDICTIONS * i // CLIENTS)
                  for i in range(CLIENTS)]  # fmt: skip
        logs = list(pool.map(lambda i: client(live, i, dataset, *shares[i]), range(CLIENTS)))
    requests_done = time.perf_counter() - started

    failures = [failure for log in logs for failure in log.failures]
    assert failures == []
    job_ids = [job_id for log in logs for job_id in log.jobs]
    predict_ms = np.array([ms for log in logs for ms in log.predict_ms])
    submit_ms = np.array([ms for log in logs for ms in log.submit_ms])
    assert len(job_ids) == len(set(job_ids)) == JOBS
    assert len(predict_ms) == PREDICTIONS

    finished = [live.wait_for_job(job_id, timeout_s=600) for job_id in job_ids]
    all_done = time.perf_counter() - started
    assert {job["state"] for job in finished} == {"succeeded"}
    assert all(job["state"] in FINAL_STATES for job in finished)
    listing = live.http.get(live.url("/v1/models")).json()["models"]
    published = {entry["name"]: entry["versions"] for entry in listing}
    assert all(published[job["model"]] == [1] for job in finished)  # one version each

    print(
        f"\nload: {CLIENTS} clients, {PREDICTIONS} predictions + {JOBS} jobs in "
        f"{requests_done:.1f} s ({PREDICTIONS / requests_done:.0f} predictions/s); "
        f"predict p50 {np.percentile(predict_ms, 50):.1f} ms, "
        f"p99 {np.percentile(predict_ms, 99):.1f} ms; submit p50 "
        f"{np.percentile(submit_ms, 50):.1f} ms, p99 {np.percentile(submit_ms, 99):.1f} ms; "
        f"all {JOBS} jobs succeeded {all_done:.1f} s after the first request"
    )
