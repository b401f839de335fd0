"""Resident memory of one API process, and which frameworks it has loaded.

    .venv/bin/python -m bench.api_memory

Trains and publishes the seed's binary model (as bench.serve does), starts
`fitserve-api` with one worker, and reads the worker process's RSS
(/proc/<pid>/status) and the frameworks' shared libraries in its memory map
(/proc/<pid>/maps) at three points: idle once `/readyz` says the model is
warm, after a `:predict` and an `:evaluate`, and after a SavedModel export
(built in a child process of its own: the worker itself is what is measured).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import requests
from sklearn.datasets import load_breast_cancer

from bench.seed_model import ONE_ROW, ONE_ROW_HEADERS, train_and_publish
from bench.stores import KEY, bench_settings
from models.datasets import DatasetStore
from models.settings import Settings
from models.storage.blobs import open_blobs
from service.local_processes import (
    Service,
    api_answers,
    forget_redis_state,
    free_port,
    settings_environment,
)

# A framework is in a process when its native library is mapped in it.
FRAMEWORK_LIBRARIES = {"jax": "jaxlib", "tensorflow": "libtensorflow"}
AUTH = {"Authorization": f"Bearer {KEY}"}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def frameworks(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name, library in FRAMEWORK_LIBRARIES.items() if library in maps]


def report(point: str, pid: int) -> None:
    loaded = ", ".join(frameworks(pid)) or "none"
    print(f"{point:28} {rss_mib(pid):8.0f} MiB   frameworks mapped: {loaded}", flush=True)


def save_evaluation_dataset(settings: Settings) -> str:
    """The seed model's own rows and labels, stored for `:evaluate`."""
    cancer = load_breast_cancer()
    x = (cancer.data - cancer.data.mean(axis=0)) / cancer.data.std(axis=0)
    body = json.dumps({"x": x.tolist(), "y": cancer.target.tolist()}).encode()
    record, _ = DatasetStore(open_blobs(settings)).save(body, "application/json")
    return str(record["id"])


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="fitserve-memory-"))
    settings = bench_settings(folder / "var")
    service = None
    try:
        train_and_publish(settings)
        dataset = save_evaluation_dataset(settings)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        service = Service.entry_point(
            ["fitserve-api"], settings_environment(settings, port), folder / "api.log"
        )
        service.wait_until(api_answers(base), timeout_s=180)
        started = time.monotonic()
        while requests.get(f"{base}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() - started < 120, "the API never became ready"
            time.sleep(0.2)
        (worker,) = children(service.process.pid)
        report("idle, model warm", worker)
        answer = requests.post(f"{base}/v1/models/cancer:predict", data=ONE_ROW,
                               headers=ONE_ROW_HEADERS, timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        answer = requests.post(f"{base}/v1/models/cancer:evaluate", json={"dataset": dataset},
                               headers=AUTH, timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        report("after :predict, :evaluate", worker)
        export = f"{base}/v1/models/cancer/versions/1/export?format=saved_model"
        answer = requests.get(export, headers=AUTH, timeout=300)
        assert answer.status_code == 200, answer.text
        report("after a SavedModel export", worker)
    finally:
        if service is not None:
            service.stop()
        forget_redis_state(settings)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
