"""Choosing the backend: run in fresh interpreters, since Keras can be
imported only once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def fresh_environment() -> dict[str, str]:
    """This one, without a backend chosen or XLA flags set."""
    return {key: value for key, value in os.environ.items()
            if key not in ("XLA_FLAGS", "KERAS_BACKEND")}  # fmt: skip


def configured(backend: str, quick: bool, xla_flags: str | None) -> dict[str, str | None]:
    environment = fresh_environment()
    if xla_flags is not None:
        environment["XLA_FLAGS"] = xla_flags
    script = (
        "import json, os, sys; from models.training.backend import configure_backend; "
        f"configure_backend({backend!r}, quick_eager_compiles={quick}); "
        "print(json.dumps({k: os.environ.get(k) for k in ('KERAS_BACKEND', 'XLA_FLAGS')}))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(json.loads(output))


def test_the_worker_compiles_eager_ops_unoptimized_on_jax_only() -> None:
    assert configured("jax", True, None) == {
        "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_backend_optimization_level=0"}  # fmt: skip
    assert configured("jax", False, None)["XLA_FLAGS"] is None  # the API process
    assert configured("tensorflow", True, None) == {"KERAS_BACKEND": "tensorflow",
                                                    "XLA_FLAGS": None}  # fmt: skip


def test_an_operators_xla_flags_are_kept_and_win() -> None:
    assert configured("jax", True, "--xla_dump_to=/tmp/x")["XLA_FLAGS"] == (
        "--xla_dump_to=/tmp/x --xla_backend_optimization_level=0"
    )
    chosen = "--xla_backend_optimization_level=2"
    assert configured("jax", True, chosen)["XLA_FLAGS"] == chosen


def test_a_fused_epoch_is_fully_optimized_in_a_worker_process() -> None:
    """Under the worker's unoptimized default, the fused trainer still trains
    (its compile options are accepted) and matches a run without the flag."""
    script = (
        "import json, numpy as np; from models.training.backend import configure_backend; "
        "configure_backend('jax', quick_eager_compiles=QUICK); "
        "from models.datasets import Dataset; from models.training.spec import ModelSpec; "
        "from models.training.fit import SilentObserver, train; "
        "spec = ModelSpec.model_validate({'input_shape': [3], 'layers': ["
        "{'type': 'dense', 'units': 4, 'activation': 'relu'}, {'type': 'dense', 'units': 1}], "
        "'compile': {'loss': 'mse', 'optimizer': 'adam'}, 'fit': {'epochs': 3, 'batch_size': 4},"
        " 'seed': 3}); "
        "x = np.random.default_rng(0).random((10, 3), dtype=np.float32); "
        "result = train(spec, Dataset(x, x.sum(axis=1)), SilentObserver(), fused=True); "
        "print(json.dumps(result.history['loss']))"
    )
    environment = fresh_environment()
    losses = [
        json.loads(subprocess.run(
            [sys.executable, "-c", script.replace("QUICK", quick)], cwd=ROOT, env=environment,
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        for quick in ("True", "False")
    ]  # fmt: skip
    assert len(losses[0]) == 3
    assert losses[0] == losses[1]
