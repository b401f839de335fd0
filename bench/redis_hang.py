"""Serving while Redis hangs (bench.many_models' step 7): an API on a Redis of
this benchmark's own (a `redis-server` started on a free port, never the
shared one), a model with two versions and a label, warmed on every worker
process; then Redis is stopped (SIGSTOP) for a while, one-row `:predict`s
by version, latest and label go out every ~100 ms on fresh connections, over
HTTP and over gRPC (tritonclient.grpc's ModelInfer, a new channel each), and
Redis is continued (SIGCONT). Target: every one answered 200 (gRPC: OK)
within 1 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import redis

from bench.api_process import start_api
from bench.fleet import TrainedModel
from bench.load import timed_request
from bench.report import check
from bench.seed_model import ONE_ROW_HEADERS
from bench.stores import bench_settings
from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore
from service.local_processes import Service, free_port

MODEL = "steady"
PATHS = {
    "version": f"/v1/models/{MODEL}/versions/1:predict",
    "latest": f"/v1/models/{MODEL}:predict",
    "label": f"/v1/models/{MODEL}/labels/stable:predict",
}
# gRPC's ModelInfer: the model version each kind names ("" is the latest).
GRPC_VERSIONS = {"gRPC version": "1", "gRPC latest": "", "gRPC label": "stable"}
INTERVAL_S = 0.1
TARGET_S = 1.0
# Requests of each kind before the hang, on fresh connections: enough that
# every worker process has answered each kind.
WARM_UP_ROUNDS = 20


def start_redis(folder: Path) -> tuple[Service, str]:
    """A private `redis-server` on a free port: (its service, its URL)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("No `redis-server` binary: install the redis-server package")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    service = Service([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", str(folder)], dict(os.environ),
                      folder / "redis.log")  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def pongs() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    service.wait_until(pongs, timeout_s=30)
    client.close()
    return service, url


def measure(folder: Path, small: TrainedModel, hang_s: float) -> None:
    print(
        f"\nRedis hung: SIGSTOP for {hang_s:.0f} s (a private redis-server), one-row "
        f":predict every {INTERVAL_S * 1000:.0f} ms by version, latest and label",
        flush=True,
    )
    redis_server, url = start_redis(folder / "redis")
    settings = bench_settings(folder / "var-hung").model_copy(update={"redis_url": url})
    store = ModelStore(open_blobs(settings))
    for _ in range(2):
        small.publish_as(store, MODEL)
    api = start_api(settings, folder, "api-hung")
    host, body = "127.0.0.1", small.one_row
    try:
        api.ready_after_s()
        status, _ = timed_request(host, api.port, "PUT", f"/v1/models/{MODEL}/labels/stable",
                                  json.dumps({"version": 1}).encode(), ONE_ROW_HEADERS)  # fmt: skip
        assert status == 200, f"setting the label answered {status}"
        for _ in range(WARM_UP_ROUNDS):
            for path in PATHS.values():
                status, _ = timed_request(host, api.port, "POST", path, body, ONE_ROW_HEADERS, 60)
                assert status == 200, f"{path} answered {status} before the hang"
        for version in GRPC_VERSIONS.values():
            status, _ = _grpc_infer(api.grpc_port, small, version)
            assert status == 200, f"gRPC ModelInfer of version {version!r} failed before the hang"
        kinds = [*PATHS, *GRPC_VERSIONS]
        answers: dict[str, list[tuple[int, float]]] = {kind: [] for kind in kinds}
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            started = time.perf_counter()
            sent = 0
            while time.perf_counter() - started < hang_s:
                kind = list(answers)[sent % len(answers)]
                if kind in PATHS:
                    answers[kind].append(timed_request(host, api.port, "POST", PATHS[kind],
                                                       body, ONE_ROW_HEADERS, 60))  # fmt: skip
                else:
                    answers[kind].append(_grpc_infer(api.grpc_port, small, GRPC_VERSIONS[kind]))
                sent += 1
                time.sleep(max(0.0, started + sent * INTERVAL_S - time.perf_counter()))
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        _report(answers)
    finally:
        api.stop()
        redis_server.stop()


def _grpc_infer(port: int, model: TrainedModel, version: str) -> tuple[int, float]:
    """(200, seconds) of one one-row ModelInfer on a new channel; (0, seconds)
    when it failed (any status but OK) or took over a minute."""
    import numpy as np
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    started = time.perf_counter()
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        tensor = triton_grpc.InferInput("x", [1, model.features], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, model.features), dtype=np.float32))
        client.infer(MODEL, [tensor], model_version=version, client_timeout=60,
                     headers={"authorization": ONE_ROW_HEADERS["Authorization"]})  # fmt: skip
        return 200, time.perf_counter() - started
    except InferenceServerException:
        return 0, time.perf_counter() - started
    finally:
        client.close()


def _report(answers: dict[str, list[tuple[int, float]]]) -> None:
    every = [answer for kind in answers.values() for answer in kind]
    for kind, results in answers.items():
        failed = sum(status != 200 for status, _ in results)
        print(f"  by {kind:12}: {len(results)} requests, max {max(s for _, s in results):.2f} s, "
              f"{failed} not 200")  # fmt: skip
    slow = sum(seconds > TARGET_S for _, seconds in every)
    failed = sum(status != 200 for status, _ in every)
    check("one-row :predict while Redis hung", f"{len(every)} requests, max "
          f"{max(s for _, s in every):.2f} s, {slow} over {TARGET_S:.0f} s, {failed} not 200",
          f"every one 200 within {TARGET_S:.0f} s", slow == 0 and failed == 0)  # fmt: skip
