"""One row over gRPC beside the REST fast lane: one service with both, in
one run. A one-row ModelInfer (tritonclient.grpc, raw FP32, the way Triton's
clients send) and a one-row JSON `:predict` (service.fast_predict's lane, a
keep-alive connection), one client at a time, taken in turns so the
machine's noise hits both alike; printed with the ratio of their p50s.

    .venv/bin/python -m bench.grpc_one_row [--seconds 12]
    (`make bench-serve` runs it too, after its own table)
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.api_process import start_api
from bench.load import LoadResult, in_turns, post_once, run_load
from bench.seed_model import ONE_ROW, ONE_ROW_HEADERS, measure_alone
from bench.stores import KEY
from models.settings import Settings
from service.local_processes import Service, api_answers

MODEL = "cancer"
PATH = f"/v1/models/{MODEL}:predict"
SLICES = 6
WARM_UP_REQUESTS = 400


def start(settings: Settings, folder: Path) -> tuple[Service, int, int]:
    """The service with gRPC on: it, its HTTP port and its gRPC port."""
    api = start_api(settings, folder, "api-grpc")
    api.service.wait_until(api_answers(api.url))
    return api.service, api.port, api.grpc_port


class GrpcOneRow:
    """tritonclient.grpc's client and the one row of bench.seed_model, as raw FP32."""

    def __init__(self, grpc_port: int) -> None:
        import tritonclient.grpc as triton

        self.client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        row = np.linspace(-1, 1, 30, dtype=np.float32).reshape(1, 30)
        self.inputs = [triton.InferInput("x", [1, 30], "FP32")]
        self.inputs[0].set_data_from_numpy(row)
        self.headers = {"authorization": f"Bearer {KEY}"}

    def once(self) -> np.ndarray:
        result = self.client.infer(MODEL, self.inputs, headers=self.headers)
        return np.asarray(result.as_numpy("output_0"))

    def run(self, seconds: float) -> LoadResult:
        latencies = []
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            self.once()
            latencies.append((time.perf_counter() - begun) * 1000)
        return LoadResult(latencies, time.perf_counter() - started, 0)


def same_answer(port: int, grpc: GrpcOneRow) -> None:
    """Both protocols answer the row alike, or the timings compare nothing."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    status, body = post_once(connection, PATH, ONE_ROW, ONE_ROW_HEADERS)
    connection.close()
    assert status == 200, body[:300]
    rest = np.ravel(json.loads(body)["predictions"])
    np.testing.assert_allclose(grpc.once().reshape(-1), rest, rtol=1e-6)


def both_in_turns(port: int, grpc: GrpcOneRow, seconds: float) -> dict[str, LoadResult]:
    same_answer(port, grpc)
    for _ in range(WARM_UP_REQUESTS):  # every worker process of both, in all likelihood
        grpc.once()
    run_load(port, PATH, ONE_ROW, ONE_ROW_HEADERS, 1, 60.0, WARM_UP_REQUESTS)
    rest = functools.partial(run_load, port, PATH, ONE_ROW, ONE_ROW_HEADERS, 1,
                             max_requests=10_000_000)  # fmt: skip
    return in_turns({"gRPC": grpc.run, "REST": rest}, seconds, SLICES)


def measure(model_settings: Settings, seconds: float) -> None:
    """The comparison, for a store in which `model_settings` published `cancer`."""
    folder = Path(tempfile.mkdtemp(prefix="fitserve-bench-grpc-"))
    service = None
    try:
        service, port, grpc_port = start(model_settings, folder)
        grpc = GrpcOneRow(grpc_port)
        results = both_in_turns(port, grpc, seconds)
        grpc.client.close()
        print(f"\none row, gRPC beside REST, one service ({seconds:.0f} s per cell, in "
              f"{SLICES} turns, one client)")  # fmt: skip
        print(f"{'':36} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
        labels = {"gRPC": "gRPC ModelInfer (tritonclient, raw)",
                  "REST": "REST :predict (JSON, fast lane)"}  # fmt: skip
        for name, result in results.items():
            errors = f"   errors {result.errors}" if result.errors else ""
            print(f"{labels[name]:36} {result.p50:8.3f} {result.p99:8.3f} "
                  f"{result.throughput:7.0f}{errors}")  # fmt: skip
        print(f"gRPC / REST fast lane: p50 {results['gRPC'].p50 / results['REST'].p50:.2f}x, "
              f"p99 {results['gRPC'].p99 / results['REST'].p99:.2f}x")  # fmt: skip
    finally:
        if service is not None:
            service.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    measure_alone(measure, "fitserve-bench-grpc-model-")
