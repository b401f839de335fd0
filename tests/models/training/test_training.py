"""Real Keras training on tiny data: determinism, progress, cancel, early stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from models.datasets import Dataset
from models.errors import JobCancelled
from models.training.fit import SilentObserver, train
from models.training.spec import ModelSpec

GENERATOR = np.random.default_rng(4)
X = GENERATOR.normal(size=(80, 5)).astype("float32")
LABELS = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")


def spec(**fit: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "input_shape": [5],
            "layers": [
                {"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dropout", "rate": 0.3},
                {"type": "batch_normalization"},
                {"type": "dense", "units": 1, "activation": "sigmoid"},
            ],
            "compile": {
                "loss": "binary_crossentropy",
                "optimizer": "adam",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 4, "batch_size": 8, **fit},
            "seed": 11,
        }  # fmt: skip
    )


def weights(seed: int) -> list[np.ndarray]:
    data = spec().model_copy(update={"seed": seed})
    result = train(data, Dataset(X, LABELS), SilentObserver())
    return [np.asarray(value) for value in result.model.get_weights()]


def test_same_spec_data_and_seed_give_identical_weights() -> None:
    first, second = weights(11), weights(11)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    other = weights(12)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


class Recorder:
    def __init__(self, stop_after_batches: int | None = None) -> None:
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.batches = 0
        self.stop_after_batches = stop_after_batches

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.epochs.append((epoch, logs))

    def should_stop(self) -> bool:
        self.batches += 1
        return self.stop_after_batches is not None and self.batches >= self.stop_after_batches


def test_every_epoch_is_reported_with_its_metrics() -> None:
    recorder = Recorder()
    result = train(spec(validation_split=0.25), Dataset(X, LABELS), recorder)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2, 3, 4]
    assert set(recorder.epochs[-1][1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.history["loss"] == [logs["loss"] for _, logs in recorder.epochs]
    assert result.encoding.classes == ["no", "yes"]
    assert result.epochs_run == 4


def test_keras_fit_stops_at_a_batch_boundary() -> None:
    recorder = Recorder(stop_after_batches=3)  # 10 batches an epoch: mid-epoch 1
    with pytest.raises(JobCancelled):
        train(spec(), Dataset(X, LABELS), recorder, fused=False)
    assert recorder.batches == 3
    assert recorder.epochs == []


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="fused training is for JAX")
def test_fused_training_stops_at_an_epoch_boundary() -> None:
    recorder = Recorder(stop_after_batches=2)  # asked once an epoch: stops after epoch 2
    with pytest.raises(JobCancelled):
        train(spec(), Dataset(X, LABELS), recorder, fused=True)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2]


def test_early_stopping_ends_before_the_last_epoch() -> None:
    stop = {"monitor": "loss", "patience": 0, "min_delta": 10.0}
    result = train(spec(epochs=50, early_stopping=stop), Dataset(X, LABELS), SilentObserver())
    assert result.epochs_run < 50


def test_mixed_precision_computes_hidden_layers_in_bfloat16() -> None:
    mixed = spec(epochs=6).model_copy(update={"precision": "mixed_bfloat16"})
    result = train(mixed, Dataset(X, LABELS), SilentObserver())
    layers = result.model.layers
    assert [layer.compute_dtype for layer in layers] == ["bfloat16"] * 3 + ["float32"]
    assert all(variable.dtype == "float32" for variable in result.model.trainable_variables)
    assert result.history["loss"][-1] < result.history["loss"][0]


@pytest.mark.parametrize("fused", [None, False])  # None: fused on JAX, Keras' fit elsewhere
def test_normalization_adapts_on_the_training_rows_only(fused: bool | None, tmp_path: Path) -> None:
    # Raw features on very different scales; the validation rows (the last
    # quarter, as Keras splits) lie far from the training rows.
    x = X * np.float32([1, 10, 100, 0.1, 1]) + np.float32([0, 50, -300, 2, 0])
    x[60:] += 1000
    data = spec(validation_split=0.25).model_dump()
    data["layers"].insert(0, {"type": "normalization"})
    result = train(ModelSpec.model_validate(data), Dataset(x, LABELS), SilentObserver(),
                   fused=fused)  # fmt: skip
    norm = result.model.layers[0]
    assert isinstance(norm, keras.layers.Normalization)
    np.testing.assert_allclose(norm.adapt_mean, x[:60].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.adapt_variance, x[:60].var(axis=0), rtol=1e-4)
    assert result.history["val_loss"]  # the far rows did validate
    # The statistics are weights: the saved model carries them, and uses them.
    result.model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True).layers[0]
    np.testing.assert_array_equal(loaded.adapt_mean, norm.adapt_mean)
    normalized = keras.ops.convert_to_numpy(loaded(x[:60]))
    np.testing.assert_allclose(normalized.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(axis=0), 1, rtol=1e-3)
