"""How soon a model published a moment ago is served (bench.many_models'
steps 5 and 6):

- under a full model budget: an API whose budget
  (FITSERVE_MODEL_CACHE_BYTES, or FITSERVE_MODEL_CACHE_SIZE where the code
  still counts models: each process reads the one it knows) holds only some
  of the MNIST-sized models it serves; a new one is published through the
  store with the Redis announcement, as a worker publishes, and Triton's own
  client asks `is_model_ready` until it says True (over HTTP; over gRPC too,
  where the server answers gRPC);
- across hosts: two APIs sharing only a Redis and a bucket on a real S3
  server (SeaweedFS), each with its own data folder; B starts with no
  models, a new model is published through A's side of the store, and B is
  asked for a one-row `:predict` until it answers one.

Targets: within 2 s, both.
"""

from __future__ import annotations

import functools
import http.client
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.api_process import Api, start_api
from bench.fleet import TrainedModel, announcing_store
from bench.load import post_once
from bench.report import check
from bench.seed_model import ONE_ROW_HEADERS
from bench.stores import KEY, bench_settings, start_seaweedfs
from models.settings import Settings
from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore
from service.local_processes import forget_redis_state

TARGET_S = 2.0
GIVE_UP_S = 60.0
POLL_S = 0.02
AUTHORIZATION = f"Bearer {KEY}"


def served_after(publish: Callable[[], object], served: Callable[[], bool]) -> tuple[float, int]:
    """Publish, then ask `served()` until True: (seconds from the publish's
    return to the first True, or inf after GIVE_UP_S; how many asks said no)."""
    publish()
    started = time.perf_counter()
    refused = 0
    while time.perf_counter() - started < GIVE_UP_S:
        if served():
            return time.perf_counter() - started, refused
        refused += 1
        time.sleep(POLL_S)
    return float("inf"), refused


def _ready_after_publish(
    client_name: str, model: str, publish: Callable[[str], object],
    is_model_ready: Callable[..., Any], headers: dict[str, str],
) -> None:  # fmt: skip
    """Publish `model`, then time `is_model_ready` (a Triton client's) until True."""
    seconds, refused = served_after(
        lambda: publish(model), lambda: bool(is_model_ready(model, headers=headers))
    )
    check(f"a new model under a full budget, ready by {client_name} is_model_ready",
          f"after {seconds:.2f} s ({refused} answers False before)", f"<= {TARGET_S:.0f} s",
          seconds <= TARGET_S)  # fmt: skip


def full_budget(folder: Path, wide: TrainedModel, models: int, room: int) -> None:
    import tritonclient.http as triton_http

    settings = bench_settings(folder / "var-budget")
    store = ModelStore(open_blobs(settings))
    for index in range(models):
        wide.publish_as(store, f"budget-{index:02}")
    # Room for `room` models' float32 weights and half a model more (what a
    # loaded version holds beyond its weights).
    budget = int((room + 0.5) * wide.weight_bytes)
    print(f"\na model published while the budget is full: {models} MNIST-sized models, "
          f"FITSERVE_MODEL_CACHE_BYTES={budget:,} (room for {room}), "
          f"FITSERVE_MODEL_CACHE_SIZE={room}", flush=True)  # fmt: skip
    # Both settings: the code reads the one it knows and ignores the other.
    limits = {"FITSERVE_MODEL_CACHE_BYTES": str(budget), "FITSERVE_MODEL_CACHE_SIZE": str(room)}
    api = start_api(settings, folder, "api-budget", limits)
    try:
        api.ready_after_s()
        _fill(api, [f"budget-{index:02}" for index in range(models)], wide.one_row)
        api.wait_until_quiet()
        publish = functools.partial(wide.publish_as, announcing_store(settings))
        client = triton_http.InferenceServerClient(f"127.0.0.1:{api.port}")
        try:
            headers = {"Authorization": AUTHORIZATION}
            _ready_after_publish(
                "tritonclient.http", "budget-new", publish, client.is_model_ready, headers
            )
        finally:
            client.close()
        # ---- gRPC hook: runs once the server answers the Open Inference
        # Protocol's gRPC on FITSERVE_GRPC__PORT (issue 25, item 4). ----
        grpc = _grpc_client(api.grpc_port)
        if grpc is None:
            print("  tritonclient.grpc: no gRPC answer on FITSERVE_GRPC__PORT: not measured")
            return
        try:
            metadata = {"authorization": AUTHORIZATION}  # gRPC's keys are lowercase
            _ready_after_publish(
                "tritonclient.grpc", "budget-new-grpc", publish, grpc.is_model_ready, metadata
            )
        finally:
            grpc.close()
    finally:
        api.stop()
        forget_redis_state(settings)


def _fill(api: Api, names: list[str], body: bytes) -> None:
    """One `:predict` on each model: the budget holds the most recently used."""
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=120)
    try:
        for name in names:
            status, answer = post_once(connection, f"/v1/models/{name}:predict", body,
                                       ONE_ROW_HEADERS)  # fmt: skip
            assert status == 200, (name, status, answer[:300])
    finally:
        connection.close()


def _grpc_client(port: int) -> Any:
    """tritonclient.grpc's client of 127.0.0.1:`port` when a server answers
    there; None when none does (or the client is not installed)."""
    try:
        import tritonclient.grpc as triton_grpc
        from tritonclient.utils import InferenceServerException
    except ImportError:
        return None
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        client.is_server_live(headers={"authorization": AUTHORIZATION}, client_timeout=2)
    except InferenceServerException:
        client.close()
        return None
    return client


def across_hosts(folder: Path, small: TrainedModel) -> None:
    print(
        "\na model published through host A, served by host B (shared Redis and a "
        "SeaweedFS bucket, a data folder each; B started with no models; both on this "
        "host's cores)",
        flush=True,
    )
    seaweedfs = start_seaweedfs(folder / "seaweedfs")
    host_a = bench_settings(folder / "host-a", seaweedfs)
    host_b: Settings = host_a.model_copy(update={"data_dir": folder / "host-b"})
    started: list[Api] = []
    try:
        open_blobs(host_a).check()  # the bucket, made before either host asks for it
        started += [
            start_api(host_a, folder, "api-host-a"),
            start_api(host_b, folder, "api-host-b"),
        ]
        for api in started:
            api.ready_after_s()
            api.wait_until_quiet()
        connection = http.client.HTTPConnection("127.0.0.1", started[1].port, timeout=120)

        def b_answers() -> bool:
            status, _ = post_once(connection, "/v1/models/crossing:predict", small.one_row,
                                  ONE_ROW_HEADERS)  # fmt: skip
            return status == 200

        try:
            seconds, refused = served_after(
                lambda: small.publish_as(announcing_store(host_a), "crossing"), b_answers
            )
        finally:
            connection.close()
        check("host B's first :predict answer after the publish on A",
              f"{seconds:.2f} s ({refused} answers not 200 before)", f"<= {TARGET_S:.0f} s",
              seconds <= TARGET_S)  # fmt: skip
    finally:
        for api in started:
            api.stop()
        seaweedfs.stop()
        forget_redis_state(host_a)
