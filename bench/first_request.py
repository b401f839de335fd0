"""The first request after a restart, against the ones after it.

    .venv/bin/python -m bench.first_request [--restarts N]

Trains and publishes the seed's binary model (as bench.serve does), then
restarts one API process (`fitserve-api`, one worker) again and again, three
ways: "ready" (warm-up on, traffic once `/readyz` answers 200), "live"
(warm-up on, traffic once `/healthz` answers: the model may still be
loading) and "cold" (`FITSERVE_PRELOAD_MODELS=false`: the first request
loads it). Each time it times the first one-row `:predict` on a keep-alive
connection and the next 50, and prints the first's latency, the median of
the rest and their ratio (medians over the restarts).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", os.environ.get("FITSERVE_KERAS_BACKEND", "jax"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.api_process import answers  # noqa: E402
from bench.seed_model import ONE_ROW, ONE_ROW_HEADERS, train_and_publish  # noqa: E402
from bench.stores import bench_settings  # noqa: E402
from models.settings import Settings  # noqa: E402
from service.local_processes import (  # noqa: E402
    Service,
    forget_redis_state,
    free_port,
    settings_environment,
)

PATH = "/v1/models/cancer:predict"
FOLLOWING = 50
MODES = {
    "ready": ("/readyz", "true"),
    "live": ("/healthz", "true"),
    "cold": ("/readyz", "false"),
}


def one_restart(settings: Settings, folder: Path, mode: str) -> tuple[float, float]:
    """(first request ms, median of the next FOLLOWING ms) on a fresh process."""
    probe, preload = MODES[mode]
    port = free_port()
    environment = settings_environment(settings, port) | {"FITSERVE_PRELOAD_MODELS": preload}
    service = Service.entry_point(["fitserve-api"], environment, folder / f"api-{mode}.log")
    try:
        started = time.perf_counter()
        service.wait_until(lambda: answers(f"http://127.0.0.1:{port}{probe}"), timeout_s=180)
        print(f"  {mode}: {probe} 200 after {time.perf_counter() - started:.1f} s", flush=True)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.connect()  # the TCP handshake is not the server's to warm
        latencies = []
        for _ in range(1 + FOLLOWING):
            began = time.perf_counter()
            connection.request("POST", PATH, body=ONE_ROW, headers=ONE_ROW_HEADERS)
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - began) * 1000)
            assert response.status == 200, response.status
        connection.close()
        return latencies[0], statistics.median(latencies[1:])
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=3, help="restarts per mode (default 3)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fitserve-first-"))
    settings = bench_settings(folder / "var")
    try:
        train_and_publish(settings)
        results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in options.modes}
        for _ in range(options.restarts):
            for mode in options.modes:  # in turns: the machine's noise hits each alike
                results[mode].append(one_restart(settings, folder, mode))
        print(f"\none-row :predict after a restart ({options.restarts} restarts per mode)")
        print(f"{'mode':8} {'first ms':>10} {'next p50 ms':>12} {'ratio':>8}")
        for mode, runs in results.items():
            first = statistics.median(run[0] for run in runs)
            rest = statistics.median(run[1] for run in runs)
            print(f"{mode:8} {first:10.2f} {rest:12.2f} {first / rest:8.1f}")
    finally:
        forget_redis_state(settings)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
