"""The seed's binary model (examples/breast_cancer.json: breast cancer, 30
features, 3 x Dense(60) + sigmoid), trained and published in process, and one
row to ask it about: what bench.serve, bench.prediction_log and
bench.first_request serve.

A module of its own so that those benchmarks share it without importing one
another (bench.serve runs bench.prediction_log's measure after its table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", os.environ.get("FITSERVE_KERAS_BACKEND", "jax"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import redis  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402

from bench.stores import KEY, bench_settings  # noqa: E402
from models.datasets import DatasetStore  # noqa: E402
from models.jobs.store import JobStore  # noqa: E402
from models.settings import Settings  # noqa: E402
from models.storage.blobs import open_blobs  # noqa: E402
from models.storage.model_store import ModelStore  # noqa: E402
from service.local_processes import forget_redis_state  # noqa: E402
from worker.context import WorkerContext  # noqa: E402
from worker.runner import run_training_job  # noqa: E402

SPEC = json.loads((ROOT / "examples" / "breast_cancer.json").read_text())["spec"]


def train_and_publish(settings: Settings) -> Path:
    """The seed model as version 1 of `cancer`; the job's Redis keys removed after."""
    cancer = load_breast_cancer()
    x = (cancer.data - cancer.data.mean(axis=0)) / cancer.data.std(axis=0)
    publish_in_process(settings, "cancer", SPEC, x, cancer.target)
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(f"{settings.redis_prefix}:*"):
        client.delete(key)
    return ModelStore(open_blobs(settings)).model_file("cancer", 1)


def measure_alone(measure: Callable[[Settings, float], None], prefix: str) -> None:
    """A benchmark's `measure(settings, seconds)` run on its own, outside
    `make bench-serve`: `--seconds` from the command line (per cell, all
    turns), the seed model in a store of its own."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12.0, help="per cell, all turns")
    options = parser.parse_args()
    with seeded_store(prefix) as settings:
        measure(settings, options.seconds)


@contextmanager
def seeded_store(prefix: str) -> Iterator[Settings]:
    """Settings of a store of their own in a new temporary folder, the seed
    model published there: for a benchmark run alone. Removed after."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    settings = bench_settings(folder / "var")
    try:
        train_and_publish(settings)
        yield settings
    finally:
        forget_redis_state(settings)
        shutil.rmtree(folder, ignore_errors=True)


def publish_in_process(
    settings: Settings, model: str, spec: dict[str, Any], x: np.ndarray, y: np.ndarray
) -> None:
    """Train `spec` on (x, y) and publish it as `model`, in this process the
    way a worker does: the dataset stored, the job created and run."""
    client = redis.Redis.from_url(settings.redis_url)
    body = json.dumps({"x": x.tolist(), "y": y.tolist()}).encode()
    record, _ = DatasetStore(open_blobs(settings)).save(body, "application/json")
    job = JobStore(client, settings.redis_prefix).create("train", model, record["id"], spec=spec)
    context = WorkerContext.from_settings(settings, client, "bench", "cpu", settings.keras_backend)
    finished = run_training_job(job["id"], context)
    if finished["state"] != "succeeded":
        raise RuntimeError(f"training the bench's model failed: {finished['error']}")


def one_row(features: int) -> bytes:
    """A one-row JSON `:predict` body of `features` values."""
    return json.dumps({"instances": [list(map(float, np.linspace(-1, 1, features)))]}).encode()


ONE_ROW = one_row(30)
ONE_ROW_HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
