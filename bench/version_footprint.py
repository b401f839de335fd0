"""What a loaded version holds in memory, measured: where the constants of
models.serving.footprint come from.

    .venv/bin/python -m bench.version_footprint [--copies N]

Publishes three models the way a worker does (iris: 4-16-3, 2 epochs; the
seed's breast cancer model: 30-60-60-60-1; an MNIST-sized 784-512-10), then
loads each N times and keeps every copy, in this one process, two ways:

- read without Keras (models.serving.model_loading.load_version): the growth
  of tracemalloc's traced memory and of RSS per copy, beside the arrays its
  plan holds (ForwardPass.nbytes);
- a Keras model as a Keras-served version holds it (`keras.saving.load_model`
  and one call on the probe batch): RSS per copy (tracemalloc does not see
  the backend's buffers), beside the bytes of its variables (the optimizer's
  included: `load_model` restores them).

It prints, per model, the bytes per copy and what models.serving.footprint
estimates for it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", os.environ.get("FITSERVE_KERAS_BACKEND", "jax"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402

from bench.seed_model import SPEC as CANCER_SPEC  # noqa: E402
from bench.seed_model import publish_in_process  # noqa: E402
from bench.stores import bench_settings  # noqa: E402
from models.serving import footprint  # noqa: E402
from models.serving.forward import ForwardPass  # noqa: E402
from models.serving.model_loading import load_version  # noqa: E402
from models.serving.serving_record import probe_batch  # noqa: E402
from models.storage.blobs import open_blobs  # noqa: E402
from models.storage.model_store import ModelStore  # noqa: E402
from service.local_processes import forget_redis_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def models() -> dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    iris = load_iris()
    iris_spec = json.loads((ROOT / "examples" / "iris.json").read_text())["spec"]
    iris_spec["fit"]["epochs"] = 2
    cancer = load_breast_cancer()
    cancer_x = (cancer.data - cancer.data.mean(axis=0)) / cancer.data.std(axis=0)
    mnist_spec = {
        "input_shape": [784],
        "layers": [{"type": "dense", "units": 512, "activation": "relu"},
                   {"type": "dense", "units": 10, "activation": "softmax"}],
        "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
        "fit": {"epochs": 1, "batch_size": 64},
    }  # fmt: skip
    rows = np.random.default_rng(0)
    mnist_x, mnist_y = rows.uniform(size=(256, 784)), rows.integers(0, 10, 256)
    return {
        "iris": (iris_spec, iris.data, iris.target),
        "cancer": (CANCER_SPEC, cancer_x, cancer.target),
        "mnist": (mnist_spec, mnist_x, mnist_y),
    }


def per_copy(load: Any, copies: int) -> tuple[float, float, list[Any]]:
    """(traced bytes, RSS bytes) of each of `copies` loads kept, and the loads."""
    load()  # first-time costs (imports, caches) are not a version's
    gc.collect()
    traced, rss = tracemalloc.get_traced_memory()[0], rss_bytes()
    kept = [load() for _ in range(copies)]
    gc.collect()
    traced_after, rss_after = tracemalloc.get_traced_memory()[0], rss_bytes()
    return (traced_after - traced) / copies, (rss_after - rss) / copies, kept


def keras_served(path: Path, input_shape: list[int]) -> Any:
    """A Keras model as a Keras-served version holds it: loaded, and called once."""
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    model(probe_batch(input_shape), training=False)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=20)
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fitserve-footprint-"))
    settings = bench_settings(folder / "var")
    try:
        for name, (spec, x, y) in models().items():
            publish_in_process(settings, name, spec, x, y)
        store = ModelStore(open_blobs(settings))
        tracemalloc.start()
        print(f"{'model':8} {'way':6} {'traced/copy':>12} {'RSS/copy':>10} "
              f"{'arrays':>10} {'estimate':>10}")  # fmt: skip
        for name, (spec, _, _) in models().items():
            traced, rss, kept = per_copy(partial(load_version, store, name, 1), options.copies)
            assert isinstance(kept[0].forward, ForwardPass) and kept[0].engine == "numpy"
            arrays = kept[0].forward.nbytes
            print(f"{name:8} {'numpy':6} {traced:12,.0f} {rss:10,.0f} {arrays:10,} "
                  f"{kept[0].nbytes:10,}")  # fmt: skip
            del kept
            load = partial(keras_served, store.model_file(name, 1), spec["input_shape"])
            traced, rss, kept = per_copy(load, options.copies)
            variables = footprint.variable_bytes(kept[0])
            estimate = footprint.keras_version_bytes(kept[0])
            print(f"{name:8} {'keras':6} {traced:12,.0f} {rss:10,.0f} {variables:10,} "
                  f"{estimate:10,}")  # fmt: skip
            del kept
    finally:
        forget_redis_state(settings)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
