"""Memory per request, measured on the API's worker process (granian's child).

No request may raise the worker's resident memory by more than 4x the bytes
it stores or predicts on (counted at float32) plus a fixed 256 MiB (BOUND
below). The peak is read as the kernel keeps it: `clear_refs` (5) resets the
process's VmHWM to its current RSS before the request, and VmHWM after it is
the highest the request took it. The figures are printed (`pytest -s`).

The API runs with glibc's mmap threshold fixed, so a large block freed by one
request goes back to the kernel instead of being reused, unseen, by the next
(which would hide that request's rise).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import redis
import requests

from models.datasets import DatasetStore
from models.jobs.store import JobStore
from models.settings import Settings
from models.storage.blobs import open_blobs
from service.local_processes import (
    Service,
    api_answers,
    forget_redis_state,
    free_port,
    settings_environment,
)
from tests.conftest import API_KEY, isolated_settings

MiB = 2**20
FIXED = 256 * MiB
UPLOAD_LIMIT = 80 * MiB
UNPACK_LIMIT = 8 * UPLOAD_LIMIT  # UNPACK_RATIO times the upload limit: 640 MiB
MAX_PREDICT_ROWS = 3_000_000
RESULT_ROWS = 2_500_000  # predicted in batch by `narrow`, one output a row
MAX_BATCH_PREDICT_VALUES = RESULT_ROWS
FEATURES = 96  # the `wide` model's input; `narrow` takes 1
T = TypeVar("T")


def bound(stored_bytes: int) -> int:
    return 4 * stored_bytes + FIXED


def spec(features: int) -> dict[str, Any]:
    return {
        "input_shape": [features],
        "layers": [
            {"type": "dense", "units": 4, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"},
        ],
        "compile": {"loss": "binary_crossentropy", "optimizer": "adam"},
        "fit": {"epochs": 1, "batch_size": 16},
        "seed": 0,
    }


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def only_child(master: int) -> int:
    children = {
        int(pid)
        for task in Path(f"/proc/{master}/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
    assert len(children) == 1, f"server process {master} has children {children}"
    return children.pop()


@dataclass
class Server:
    base_url: str
    http: requests.Session
    settings: Settings
    worker_pid: int

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def rise(self, send: Callable[[], T]) -> tuple[T, int]:
        """What `send()` returns, and how far it raised the worker's RSS at its peak."""
        Path(f"/proc/{self.worker_pid}/clear_refs").write_text("5")
        before = status_bytes(self.worker_pid, "VmRSS")
        response = send()
        return response, status_bytes(self.worker_pid, "VmHWM") - before


def report(case: str, body_bytes: int, rise: int, stored_bytes: int) -> str:
    line = (
        f"{case}: body {body_bytes / MiB:.1f} MiB, rise {rise / MiB:.0f} MiB, "
        f"bound {bound(stored_bytes) / MiB:.0f} MiB (stores or predicts on "
        f"{stored_bytes / MiB:.1f} MiB at float32)"
    )
    print(line)
    return line


def publish(settings: Settings, model: str, features: int) -> None:
    """Train and publish a tiny model the way a worker does, in this process."""
    from worker.context import WorkerContext
    from worker.runner import run_training_job

    rows = 32
    x = np.random.default_rng(0).normal(size=(rows, features)).astype(np.float32)
    body = npz(x=x, y=np.arange(rows) % 2)
    record, _ = DatasetStore(open_blobs(settings)).save(body, "application/x-npz")
    client = redis.Redis.from_url(settings.redis_url)
    job = JobStore(client, settings.redis_prefix).create(
        "train", model, record["id"], spec=spec(features)
    )
    context = WorkerContext.from_settings(settings, client, "test", "cpu", settings.keras_backend)
    finished = run_training_job(job["id"], context)
    assert finished["state"] == "succeeded", finished["error"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("memory")
    settings = isolated_settings(folder / "var")
    publish(settings, "wide", FEATURES)
    publish(settings, "narrow", 1)
    port = free_port()
    environment = {
        **settings_environment(settings, port),
        "FITSERVE_LIMITS__MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "FITSERVE_LIMITS__MAX_PREDICT_ROWS": str(MAX_PREDICT_ROWS),
        "FITSERVE_LIMITS__MAX_BATCH_PREDICT_VALUES": str(MAX_BATCH_PREDICT_VALUES),
        # Fixed thresholds: freed blocks go back to the kernel (see the docstring).
        "MALLOC_MMAP_THRESHOLD_": str(128 * 1024),
        "MALLOC_TRIM_THRESHOLD_": str(128 * 1024),
    }
    api = Service.entry_point(["fitserve-api"], environment, folder / "api.log")
    base_url = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {API_KEY}"
    try:
        api.wait_until(api_answers(base_url))
        live = Server(base_url, http, settings, only_child(api.process.pid))
        warm_up(live)
        yield live
    finally:
        http.close()
        api.stop()
        forget_redis_state(settings)


def warm_up(server: Server) -> None:
    """One small request of each kind, so that no measured request pays for a
    first import or a model load."""
    for model, features in (("wide", FEATURES), ("narrow", 1)):
        for content_type, body in (
            ("application/x-npy", npy(np.zeros((4, features), np.float32))),
            ("text/csv", b"\n".join([b",".join([b"0"] * features)] * 4)),
            ("application/json", json.dumps({"instances": [[0.0] * features]}).encode()),
        ):
            response = server.http.post(
                server.url(f"/v1/models/{model}:predict"), data=body,
                headers={"Content-Type": content_type},
            )  # fmt: skip
            assert response.status_code == 200, response.text
    for content_type, body in (
        ("text/csv", b"a,b\n1,2\n3,4\n"),
        ("application/x-npz", npz(x=np.zeros((4, 2), np.int8), y=np.arange(4))),
    ):
        response = server.http.post(
            server.url("/v1/datasets"), data=body, headers={"Content-Type": content_type}
        )
        assert response.status_code in (200, 201), response.text


def upload(server: Server, body: bytes, content_type: str) -> tuple[requests.Response, int]:
    return server.rise(
        lambda: server.http.post(
            server.url("/v1/datasets"), data=body, headers={"Content-Type": content_type}
        )
    )


def deflated_zeros_npz(x_shape: tuple[int, ...], dtype: str) -> bytes:
    """An NPZ of zeros, compressed: a small body that declares large arrays."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("x.npy", npy(np.zeros(x_shape, dtype)))
        bundle.writestr("y.npy", npy(np.zeros(x_shape[0], dtype)))
    return archive.getvalue()


# --- datasets ----------------------------------------------------------------------------


def test_an_int8_npz_over_its_limit_at_float32_is_refused_from_its_headers(
    server: Server,
) -> None:
    """Declares 200 MiB of int8: under the unpack limit as archived (640 MiB
    here) but 800 MiB at float32, the dtype it is kept in. Refused from the
    headers, so the request costs little more than its small body."""
    rows = 200 * MiB // (FEATURES + 1)
    body = deflated_zeros_npz((rows, FEATURES), "int8")
    response, rise = upload(server, body, "application/x-npz")
    report("int8 NPZ declaring 200 MiB", len(body), rise, 0)
    assert response.status_code == 422, response.text
    assert "float32" in response.json()["error"]["message"]
    assert rise <= bound(0)


def test_a_csv_of_two_short_columns_is_parsed_within_the_bound(server: Server) -> None:
    rows = 4_000_000
    body = b"a,label\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(10)) * (rows // 10)
    response, rise = upload(server, body, "text/csv")
    stored = rows * 2 * 4
    report("CSV of two short columns", len(body), rise, stored)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == rows
    assert rise <= bound(stored)


def test_a_json_dataset_is_parsed_within_the_bound(server: Server) -> None:
    rows = 100_000
    x = np.round(np.random.default_rng(6).normal(size=(rows, FEATURES)), 4)
    body = json.dumps({"x": x.tolist(), "y": [i % 2 for i in range(rows)]}).encode()
    response, rise = upload(server, body, "application/json")
    stored = x.size * 4 + rows * 4
    report("JSON dataset", len(body), rise, stored)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == rows
    assert rise <= bound(stored)


def test_a_wide_header_over_short_rows_is_refused_within_the_bound(server: Server) -> None:
    """20,000 columns, then 4 million rows of one field each: never rows x header width."""
    header = ",".join(f"c{i}" for i in range(20_000)).encode()
    body = header + b"\n" + b"1\n" * 4_000_000
    response, rise = upload(server, body, "text/csv")
    report("wide-header CSV over short rows", len(body), rise, 0)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("Line 2 has 1 fields")
    assert rise <= bound(0)


# --- :predict ----------------------------------------------------------------------------


def predict(
    server: Server, model: str, body: bytes, content_type: str, accept: str = "application/json"
) -> tuple[requests.Response, int]:
    return server.rise(
        lambda: server.http.post(
            server.url(f"/v1/models/{model}:predict"),
            data=body,
            headers={"Content-Type": content_type, "Accept": accept},
        )  # fmt: skip
    )


def test_a_large_npy_body_is_predicted_within_the_bound(server: Server) -> None:
    """3 million float64 samples of one feature: the body is read once, viewed
    in place, and the answer written a chunk at a time."""
    x = np.random.default_rng(1).normal(size=(MAX_PREDICT_ROWS, 1))
    body = npy(x)
    response, rise = predict(server, "narrow", body, "application/x-npy")
    predicted = x.size * 4
    report(".npy predict body (float64, JSON answer)", len(body), rise, predicted)
    assert response.status_code == 200, response.text
    assert response.content.startswith(b'{"predictions":[[')
    assert response.content.count(b"],[") == MAX_PREDICT_ROWS - 1
    assert rise <= bound(predicted)


def test_a_large_csv_body_is_predicted_within_the_bound(server: Server) -> None:
    block = np.random.default_rng(2).integers(0, 100, size=(1000, FEATURES))
    x = np.tile(block, (100, 1))
    lines = (b",".join(b"%d" % value for value in row) + b"\n" for row in block.tolist())
    body = b"".join(lines) * 100
    response, rise = predict(server, "wide", body, "text/csv", "application/x-npy")
    predicted = x.size * 4
    report("CSV predict body", len(body), rise, predicted)
    assert response.status_code == 200, response.text
    assert np.load(io.BytesIO(response.content)).shape == (len(x), 1)
    assert rise <= bound(predicted)


def test_a_large_json_body_is_predicted_within_the_bound(server: Server) -> None:
    """100,000 rows of 96 features as {"instances": [[...], ...]}: the rows are
    read straight into float32 (models.datasets.json_numbers), not as a Python
    float per number (32 bytes each, against 4)."""
    x = np.round(np.random.default_rng(5).normal(size=(100_000, FEATURES)), 4)
    body = json.dumps({"instances": x.tolist()}).encode()
    response, rise = predict(server, "wide", body, "application/json", "application/x-npy")
    predicted = x.size * 4
    report("JSON predict body", len(body), rise, predicted)
    assert response.status_code == 200, response.text
    assert np.load(io.BytesIO(response.content)).shape == (len(x), 1)
    assert rise <= bound(predicted)


@pytest.mark.parametrize("content_type", ["application/x-npy", "text/csv"])
def test_predict_refuses_more_rows_than_its_limit(server: Server, content_type: str) -> None:
    rows = MAX_PREDICT_ROWS + MAX_PREDICT_ROWS // 6
    if content_type == "application/x-npy":
        body = npy(np.ones((rows, 1), np.float32))
    else:
        body = b"1\n" * rows
    response, rise = predict(server, "narrow", body, content_type)
    report(f"predict of {rows:,} rows ({content_type})", len(body), rise, 0)
    assert response.status_code == 413, response.text
    message = response.json()["error"]["message"]
    assert f"{MAX_PREDICT_ROWS:,}" in message and f"Received: {rows:,} samples" in message
    assert rise <= bound(0)


# --- :batchPredict and its result --------------------------------------------------------


def stored_dataset(server: Server, rows: int) -> str:
    """`rows` samples of one feature, stored as an upload would store them."""
    x = np.random.default_rng(3).normal(size=(rows, 1)).astype(np.float32)
    body = npz(x=x, y=(x[:, 0] > 0).astype(np.int8))
    record, _ = DatasetStore(open_blobs(server.settings)).save(body, "application/x-npz")
    return record["id"]


def batch_predict(server: Server, model: str, dataset: str) -> tuple[requests.Response, int]:
    return server.rise(
        lambda: server.http.post(
            server.url(f"/v1/models/{model}:batchPredict"), json={"dataset": dataset}
        )
    )


def test_batch_predict_refuses_more_outputs_than_its_limit(server: Server) -> None:
    rows = MAX_BATCH_PREDICT_VALUES + 1
    response, rise = batch_predict(server, "narrow", stored_dataset(server, rows))
    report("batchPredict over its output limit", 0, rise, 0)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert f"{rows:,} values" in error["message"]
    assert f"{MAX_BATCH_PREDICT_VALUES:,}" in error["message"]
    assert error["details"][0]["loc"] == ["dataset"]
    assert rise <= bound(0)


def test_a_batch_result_is_streamed(server: Server) -> None:
    from worker.context import WorkerContext
    from worker.runner import run_prediction_job

    submitted, _ = batch_predict(server, "narrow", stored_dataset(server, RESULT_ROWS))
    assert submitted.status_code == 202, submitted.text
    settings = server.settings
    context = WorkerContext.from_settings(
        settings, redis.Redis.from_url(settings.redis_url), "test", "cpu", settings.keras_backend
    )
    # The job runs here, as a worker runs it: the API is what is measured.
    job = run_prediction_job(submitted.json()["id"], context)
    assert job["state"] == "succeeded", job["error"]

    def fetch() -> tuple[requests.Response, int]:
        response = server.http.get(server.url(f"/v1/jobs/{job['id']}/result"), stream=True)
        return response, sum(chunk.count(b"\n") for chunk in response.iter_content(MiB))

    (response, lines), rise = server.rise(fetch)
    served = RESULT_ROWS * 4
    report("batch result as CSV", 0, rise, served)
    assert response.status_code == 200
    assert lines == RESULT_ROWS + 1
    assert rise <= bound(served)
