"""Fused training (one compiled call per epoch, JAX) against Keras' own `fit`.

Without shuffling both see the same batches in the same order, so they must
agree epoch by epoch: loss, metrics, validation, regularisation, the last
partial batch and batch normalization's statistics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from models.datasets import Dataset
from models.training.fit import SilentObserver, train
from models.training.spec import ModelSpec

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="fused training is JAX")

ROOT = Path(__file__).resolve().parents[4]
GENERATOR = np.random.default_rng(6)
X = GENERATOR.normal(size=(93, 5)).astype("float32")  # 93 rows: a partial last batch


def spec(head: dict[str, Any], loss: str, metrics: list[str], **fit: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "input_shape": [5],
            "layers": [
                {
                    "type": "dense",
                    "units": 12,
                    "activation": "relu",
                    "kernel_regularizer": {"l2": 0.01},
                },
                {"type": "batch_normalization"},
                {"type": "dense", "units": 8, "activation": "tanh"},
                head,
            ],
            "compile": {
                "loss": loss,
                "optimizer": {"name": "adam", "learning_rate": 0.01},
                "metrics": metrics,
            },
            "fit": {"epochs": 5, "batch_size": 8, "shuffle": False, **fit},
            "seed": 5,
        }  # fmt: skip
    )


CASES = {
    "binary": (
        spec({"type": "dense", "units": 1, "activation": "sigmoid"}, "binary_crossentropy",
             ["accuracy", "auc"], validation_split=0.2),
        np.where(X[:, 0] > 0, "yes", "no"),
    ),
    "categorical": (
        spec({"type": "dense", "units": 3, "activation": "softmax"}, "categorical_crossentropy",
             ["accuracy"], validation_split=0.25),
        np.argmax(X[:, :3], axis=1),
    ),
    "sparse": (
        spec({"type": "dense", "units": 3, "activation": "softmax"},
             "sparse_categorical_crossentropy", ["accuracy"]),
        np.argmax(X[:, :3], axis=1),
    ),
    "regression": (
        spec({"type": "dense", "units": 2}, "mse", ["mae"], validation_split=0.1),
        np.stack([X.sum(axis=1), X[:, 0] * 3], axis=1).astype("float32"),
    ),
}  # fmt: skip


def with_fit(model_spec: ModelSpec, **changes: Any) -> ModelSpec:
    data = model_spec.model_dump()
    data["fit"].update(changes)
    return ModelSpec.model_validate(data)


@pytest.mark.parametrize("case", list(CASES))
def test_fused_training_agrees_with_keras_fit(case: str) -> None:
    model_spec, labels = CASES[case]
    data = Dataset(X, labels)
    fused = train(model_spec, data, SilentObserver(), fused=True)
    plain = train(model_spec, data, SilentObserver(), fused=False)
    assert set(fused.history) == set(plain.history)
    for name, values in plain.history.items():
        np.testing.assert_allclose(fused.history[name], values, rtol=2e-3, atol=1e-4,
                                   err_msg=name)  # fmt: skip
    for mine, theirs in zip(fused.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=2e-3, atol=2e-4)


def test_fused_training_with_normalization_agrees_with_keras_fit() -> None:
    # Raw features on far-apart scales, validation rows shifted away from the
    # training rows: both trainers adapt on the same training rows.
    model_spec, labels = CASES["regression"]
    data = model_spec.model_dump()
    data["layers"].insert(0, {"type": "normalization"})
    x = X * np.float32([1, 10, 100, 0.1, 1]) + np.float32([0, 50, -300, 2, 0])
    x[-10:] += 100
    dataset = Dataset(x, labels)
    fused = train(ModelSpec.model_validate(data), dataset, SilentObserver(), fused=True)
    plain = train(ModelSpec.model_validate(data), dataset, SilentObserver(), fused=False)
    for name, values in plain.history.items():
        np.testing.assert_allclose(fused.history[name], values, rtol=2e-3, atol=1e-4,
                                   err_msg=name)  # fmt: skip
    for mine, theirs in zip(fused.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=2e-3, atol=2e-4)


def test_fused_training_is_deterministic_and_shuffles() -> None:
    model_spec, labels = CASES["binary"]
    shuffled = model_spec.model_copy(
        update={"fit": model_spec.fit.model_copy(update={"shuffle": True})}
    )
    runs = [train(shuffled, Dataset(X, labels), SilentObserver(), fused=True) for _ in range(2)]
    assert runs[0].history == runs[1].history
    unshuffled = train(model_spec, Dataset(X, labels), SilentObserver(), fused=True)
    assert runs[0].history["loss"] != unshuffled.history["loss"]


def test_early_stopping_restores_the_best_weights() -> None:
    model_spec, labels = CASES["regression"]
    stop = {"monitor": "val_loss", "patience": 1, "min_delta": 1e9, "restore_best_weights": True}
    stopping = with_fit(model_spec, epochs=30, early_stopping=stop)
    result = train(stopping, Dataset(X, labels), SilentObserver(), fused=True)
    # min_delta this large: no epoch improves on the first, so it stops after two.
    assert result.epochs_run == 2
    first_epoch = train(with_fit(model_spec, epochs=1), Dataset(X, labels), SilentObserver(),
                        fused=True)  # fmt: skip
    for restored, best in zip(result.model.get_weights(), first_epoch.model.get_weights(),
                              strict=True):  # fmt: skip
        np.testing.assert_allclose(restored, best, rtol=1e-6, atol=1e-6)


def test_the_compiled_epoch_depends_on_shapes_not_on_the_data(tmp_path: Path) -> None:
    """Two datasets of one shape share one compiled program, and the data is
    not in it: in a fresh process with the worker's compilation cache, the
    cache holds one small epoch program after training on both. (Closed over,
    the data was baked into the program: a new program per dataset, each as
    large as its data.)"""
    script = f"""
import numpy as np
from pathlib import Path
from models.training.backend import configure_backend, enable_compilation_cache
configure_backend("jax")
enable_compilation_cache(Path({str(tmp_path)!r}))
from models.datasets import Dataset
from models.training.spec import ModelSpec
from models.training.fit import SilentObserver, train
spec = ModelSpec.model_validate({{
    "input_shape": [784],
    "layers": [{{"type": "dense", "units": 8, "activation": "relu"}},
               {{"type": "dense", "units": 1, "activation": "sigmoid"}}],
    "compile": {{"loss": "binary_crossentropy", "optimizer": "adam"}},
    "fit": {{"epochs": 1, "batch_size": 256, "validation_split": 0.1}}, "seed": 1}})
for seed in (1, 2):
    x = np.random.default_rng(seed).random((4000, 784), dtype=np.float32)  # 12.5 MB
    train(spec, Dataset(x, (x[:, 0] > 0.5).astype(int)), SilentObserver(), fused=True)
"""
    environment = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, check=True,
                   capture_output=True)  # fmt: skip
    epochs = [path.stat().st_size for path in tmp_path.iterdir()
              if path.name.startswith("jit_epoch-") and path.name.endswith("-cache")]  # fmt: skip
    assert len(epochs) == 1 and epochs[0] < 2_000_000, epochs
