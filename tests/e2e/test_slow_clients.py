"""Slow and idle clients (bench/slow_clients.py's attack) against the live API:
500 connections that send a request line or headers a byte a second, and 500
that send nothing, do not keep `:predict` and `/healthz` from answering.

The time they take is printed (`pytest -s`), not asserted: the machine's load
would make a bound flaky. `python -m bench.slow_clients` reports it against a
1 s budget. A server whose threads wait on slow clients makes the requests here
time out (10 s) instead."""

from __future__ import annotations

import time

import numpy as np
import requests

from bench.slow_clients import attacking
from tests.conftest import API_KEY
from tests.e2e.conftest import Live

SLOW, IDLE = 500, 500
X = np.random.default_rng(3).normal(size=(32, 3)).round(3)
SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 8},
}


def train(live: Live, model: str) -> None:
    body = {"x": X.tolist(), "y": X.sum(axis=1).tolist()}
    dataset = live.http.post(live.url("/v1/datasets"), json=body).json()["id"]
    job = live.http.post(live.url("/v1/jobs"), json={"model": model, "spec": SPEC,
                                                     "dataset": dataset}).json()  # fmt: skip
    assert live.wait_for_job(job["id"])["state"] == "succeeded"


def test_predict_and_healthz_answer_while_slow_and_idle_clients_hold_connections(
    live: Live,
) -> None:
    train(live, "slow-clients")
    predict = "/v1/models/slow-clients:predict"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    row = {"instances": X[:1].tolist()}
    # Warm: the model is loaded before the attack, as on a serving host.
    assert requests.post(live.url(predict), json=row, headers=auth, timeout=60).status_code == 200
    port = int(live.base_url.rsplit(":", 1)[1])

    with attacking("127.0.0.1", port, predict, (SLOW, IDLE, 0)) as attack:
        time.sleep(1.0)  # every slow one has sent a byte since it connected
        # Fresh connections (no session): a new client arriving during the attack.
        started = time.perf_counter()
        answer = requests.post(live.url(predict), json=row, headers=auth, timeout=10)
        predict_s = time.perf_counter() - started
        started = time.perf_counter()
        health = requests.get(live.url("/healthz"), timeout=10)
        healthz_s = time.perf_counter() - started
        held = attack.counts()

    print(f"\nunder {SLOW} slow + {IDLE} idle connections: predict {predict_s * 1000:.1f} ms, "
          f"healthz {healthz_s * 1000:.1f} ms; (connected, still open): {held}")  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 1
    assert health.status_code == 200
    assert attack.refused == 0
    # The server answered while it held them: the attack was on, not refused or cut short.
    assert held["slow"][1] >= 0.9 * SLOW and held["idle"][1] >= 0.9 * IDLE, held
