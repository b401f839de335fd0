"""The API's worker processes under `fitserve-api` (granian): one that dies is
replaced, and its live gauges leave /metrics with it (service.main's `app()`
drops them; gunicorn's child_exit hook did before). Each serves gRPC on the
one port beside HTTP, and a port someone else holds stops the start."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.slow_clients import ONE_ROW_FEATURES, one_row_body, publish_small_model
from models.settings import Settings
from service.grpc_api.protocol import ModelInferRequest
from service.local_processes import Service, api_answers, free_port, settings_environment
from tests.conftest import API_KEY
from tests.oip_grpc import OipChannel

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


def listening_sockets(port: int) -> set[str]:
    """The inodes of the sockets that listen on `port` (Linux's /proc/net tables)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    return inodes


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def test_every_worker_process_serves_grpc_on_the_one_port_and_stops_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    publish_small_model(settings, "spread")
    port, grpc_port = free_port(), free_port()
    environment = settings_environment(settings, port, grpc_port)
    environment["FITSERVE_SERVER__WORKERS"] = "2"
    service = Service.entry_point(["fitserve-api"], environment, tmp_path / "api.log")
    try:
        service.wait_until(api_answers(f"http://127.0.0.1:{port}"))
        workers = children(service.process.pid)
        assert len(workers) == 2
        # SO_REUSEPORT: each process has a listening socket of its own on the port.
        service.wait_until(lambda: all(sockets_of(pid) & listening_sockets(grpc_port)
                                       for pid in workers))  # fmt: skip
        row = np.full((1, ONE_ROW_FEATURES), 0.1, np.float32)
        request = ModelInferRequest(
            model_name="spread", raw_input_contents=[row.tobytes()],
            inputs=[{"name": "x", "datatype": "FP32", "shape": list(row.shape)}],
        )  # fmt: skip
        for _ in range(6):  # a connection each: the kernel picks a process for each
            channel = OipChannel(f"127.0.0.1:{grpc_port}")
            assert channel.call("ModelInfer", request).model_version == "1"
            channel.close()
    finally:
        code = service.stop(timeout_s=60)
    log = service.log_path.read_text(errors="replace")
    assert code == 0, service.log_tail()
    assert "Unexpected exit" not in log and "Traceback" not in log, service.log_tail()


def test_a_taken_grpc_port_stops_fitserve_api_with_a_clear_message(
    settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        environment = settings_environment(settings, free_port(), taken)
        service = Service.entry_point(["fitserve-api"], environment, tmp_path / "api.log")
        code = service.process.wait(timeout=60)
    assert code != 0
    assert f"the gRPC port {taken} on 127.0.0.1 is taken" in service.log_tail()
    assert "FITSERVE_GRPC__PORT" in service.log_tail()
