"""Training benchmark: the four example programs as the plain Keras script and
through the service, in one run.

    make bench-train        (or: .venv/bin/python -m bench.train [--repeats N])

The plain script (bench/plain_fit.py: `fit` on numpy arrays with the spec's
arguments, timed alone) runs under TensorFlow, what `pip install tensorflow`
gives a user, and under JAX, the service's backend. The service is a real
worker and API; a job's time is its record's `started_at` to `finished_at`
(loading the data, training, saving and publishing the model). Each service
job runs `repeats` times: the first pays for compiling its program, later ones
find it in the worker's compilation cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

import requests  # noqa: E402

from bench.examples import EXAMPLES, FILES, ensure_data  # noqa: E402
from models.settings import Queues, Settings  # noqa: E402
from service.local_processes import (  # noqa: E402
    Service,
    api_answers,
    free_port,
    settings_environment,
    worker_answers,
)

KEY = "bench-key"
BACKENDS = ("tensorflow", "jax")


def plain(backend: str, example: str, repeats: int) -> dict[str, Any]:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.plain_fit", backend, example, str(repeats)],
        capture_output=True, text=True, check=True, env=environment, cwd=ROOT,
    )  # fmt: skip
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def service_runs(url: str, example: str, repeats: int) -> list[dict[str, Any]]:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {KEY}"
    filename, media_type = FILES[example]
    data = (ensure_data() / filename).read_bytes()
    spec_part = (EXAMPLES / f"{example}.json").read_bytes()
    jobs = []
    for _ in range(repeats):
        response = http.post(f"{url}/v1/jobs", files={
            "spec": ("spec.json", spec_part, "application/json"),
            "file": (filename, data, media_type)})  # fmt: skip
        response.raise_for_status()
        job_id = response.json()["id"]
        while (job := http.get(f"{url}/v1/jobs/{job_id}").json())["state"] not in (
            "succeeded", "failed", "cancelled"):  # fmt: skip
            time.sleep(0.05)
        assert job["state"] == "succeeded", job["error"]
        jobs.append(job)
    return jobs


def seconds(job: dict[str, Any], start: str = "started_at", end: str = "finished_at") -> float:
    begin, finish = (datetime.fromisoformat(job[key].replace("Z", "+00:00"))
                     for key in (start, end))  # fmt: skip
    return (finish - begin).total_seconds()


def metric_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in sorted(metrics.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", nargs="*", default=list(FILES))
    options = parser.parse_args()
    ensure_data()
    folder = Path(tempfile.mkdtemp(prefix="fitserve-bench-train-"))
    tag = uuid.uuid4().hex[:8]
    settings = Settings(data_dir=folder / "var", redis_prefix=f"bench-{tag}",
                        queues=Queues(cpu=f"bench-{tag}.cpu", gpu=f"bench-{tag}.gpu"),
                        api_keys=[KEY])  # fmt: skip
    port = free_port()
    environment = settings_environment(settings, port)
    worker = Service.entry_point(["fitserve-worker"], environment, folder / "worker.log")
    api = Service.entry_point(["fitserve-api"], environment, folder / "api.log")
    try:
        api.wait_until(api_answers(f"http://127.0.0.1:{port}"))
        worker.wait_until(worker_answers(settings.redis_url, worker.process.pid), 180)
        rows = []
        for example in options.examples:
            baselines = {backend: plain(backend, example, options.repeats)
                         for backend in BACKENDS}  # fmt: skip
            jobs = service_runs(f"http://127.0.0.1:{port}", example, options.repeats)
            rows.append((example, baselines, jobs))
    finally:
        api.stop()
        worker.stop()
    report(rows, options.repeats)


def report(rows: list[tuple[str, dict[str, Any], list[dict[str, Any]]]], repeats: int) -> None:
    import keras

    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, Keras {keras.__version__}; service backend: jax "
          f"(fused training); medians of {repeats}")  # fmt: skip
    print(f"\n{'example':14} {'plain TF s':>10} {'plain JAX s':>11} {'service s':>10} "
          f"{'(first)':>8} {'vs TF':>7} {'vs JAX':>7}")  # fmt: skip
    for example, baselines, jobs in rows:
        tf, jax = baselines["tensorflow"]["fit_s"], baselines["jax"]["fit_s"]
        times = [seconds(job) for job in jobs]
        median = statistics.median(times)
        print(f"{example:14} {tf:10.2f} {jax:11.2f} {median:10.2f} {times[0]:8.2f} "
              f"{tf / median:6.1f}x {jax / median:6.1f}x")  # fmt: skip
    waits = [seconds(job, "created_at", "started_at") for _, _, jobs in rows for job in jobs]
    print(
        f"\nqueue to start (created_at -> started_at, idle worker): median "
        f"{statistics.median(waits) * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms"
    )
    print("\nfinal training metrics")
    for example, baselines, jobs in rows:
        print(f"  {example}")
        for backend in BACKENDS:
            print(f"    plain {backend:10} {metric_text(baselines[backend]['metrics'])}")
        print(f"    service          {metric_text(jobs[-1]['result']['metrics'])}")
        tf_loss = baselines["tensorflow"]["metrics"]["loss"]
        loss = jobs[-1]["result"]["metrics"]["loss"]
        print(f"    service loss / plain TF loss: {loss / tf_loss:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
