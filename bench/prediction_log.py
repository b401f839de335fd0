"""What the prediction log costs a one-row :predict: the service twice, with
FITSERVE_PREDICTION_LOG__SAMPLE=0 (off) and =1 (every request logged), in
one run, measured in turns (off, on, on, off, ...) so the machine's noise
hits both alike. Target: p50 at sample 1 within +10% of sample 0.

    .venv/bin/python -m bench.prediction_log [--seconds 12]
    (`make bench-serve` runs it too, after its own table)
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

from bench.api_process import start_api
from bench.load import LoadResult, in_turns, run_load
from bench.seed_model import ONE_ROW, ONE_ROW_HEADERS, measure_alone
from bench.stores import KEY
from models.settings import Settings
from service.local_processes import Service, api_answers

PATH = "/v1/models/cancer:predict"
SLICES = 6


def start(settings: Settings, sample: float, folder: Path) -> tuple[Service, int]:
    api = start_api(
        settings, folder, f"api-{sample}", {"FITSERVE_PREDICTION_LOG__SAMPLE": str(sample)}
    )
    api.service.wait_until(api_answers(api.url))
    return api.service, api.port


def both_in_turns(ports: dict[str, int], clients: int, seconds: float) -> dict[str, LoadResult]:
    for port in ports.values():  # warm every worker process of each
        run_load(port, PATH, ONE_ROW, ONE_ROW_HEADERS, 8, 60.0, 400)
    runs = {name: functools.partial(run_load, port, PATH, ONE_ROW, ONE_ROW_HEADERS, clients,
                                    max_requests=10_000_000)
            for name, port in ports.items()}  # fmt: skip
    return in_turns(runs, seconds, SLICES)


def logged_outcomes(port: int) -> dict[str, float]:
    """fitserve_prediction_log_records_total by outcome, from /metrics."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    text = urllib.request.urlopen(request, timeout=30).read().decode()
    pattern = r'fitserve_prediction_log_records_total\{outcome="(\w+)"\} ([0-9.e+]+)'
    return {outcome: float(value) for outcome, value in re.findall(pattern, text)}


def measure(model_settings: Settings, seconds: float) -> None:
    """The cost table, for a store in which `model_settings` published `cancer`."""
    folder = Path(tempfile.mkdtemp(prefix="fitserve-bench-log-"))
    started: list[Service] = []
    try:
        ports = {}
        for name, sample in (("sample 0", 0.0), ("sample 1.0", 1.0)):
            service, ports[name] = start(model_settings, sample, folder)
            started.append(service)
        print(f"\nprediction log cost, one row ({seconds:.0f} s per cell, in {SLICES} turns)")
        print(f"{'':12} {'c1 p50 ms':>10} {'c1 req/s':>9} {'c8 p50 ms':>10} {'c8 req/s':>9}")
        results = {clients: both_in_turns(ports, clients, seconds) for clients in (1, 8)}
        for name in ports:
            c1, c8 = results[1][name], results[8][name]
            print(f"{name:12} {c1.p50:10.3f} {c1.throughput:9.0f} {c8.p50:10.3f} "
                  f"{c8.throughput:9.0f}")  # fmt: skip
        ratios = [results[c]["sample 1.0"].p50 / results[c]["sample 0"].p50 for c in (1, 8)]
        print(f"sample 1.0 / sample 0: c1 p50 {ratios[0]:.3f}x, c8 p50 {ratios[1]:.3f}x "
              "(target <= 1.10x)")  # fmt: skip
        outcomes = logged_outcomes(ports["sample 1.0"])
        print(f"records at sample 1.0, by outcome (all its processes, as flushed so far): "
              f"{outcomes or 'none counted'}")  # fmt: skip
        stored = sum(1 for _ in (model_settings.data_dir / "predictions").rglob("*.jsonl"))
        print(f"objects the sample-1.0 service wrote to the store: {stored}")
    finally:
        for service in started:
            service.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    measure_alone(measure, "fitserve-bench-log-model-")
