"""Loading a version: read without Keras when the record its worker made at
publish confirms the numpy pass; with Keras, as before, when there is no
record, when the pass disagrees with it, or when a layer has no numpy step;
a file that does not read fails clearly. And what a loaded version says it
holds (`nbytes`) against what tracemalloc sees a load keep."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.errors import InvalidModelFile, ServiceUnavailable  # noqa: E402
from models.serving.model_loading import load_version  # noqa: E402
from models.serving.predictor import Predictor  # noqa: E402
from models.serving.serving_record import regularization_penalty, serving_record  # noqa: E402
from models.storage.blobs import FolderBlobs  # noqa: E402
from models.storage.model_store import ModelStore  # noqa: E402
from models.training.builder import build_model  # noqa: E402
from models.training.spec import ModelSpec  # noqa: E402

SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 8, "activation": "relu",
                "kernel_regularizer": {"l2": 0.01}},
               {"type": "batch_normalization"},
               {"type": "dense", "units": 2, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy"},
    "fit": {"epochs": 1},
}  # fmt: skip
METADATA = {"task": "categorical", "classes": ["no", "yes"], "input_shape": [3], "outputs": 2,
            "spec": SPEC, "history": {"loss": [0.5] * 100}}  # fmt: skip
X = np.random.default_rng(1).normal(size=(32, 3)).astype("float32")


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(FolderBlobs(tmp_path))


def trained(spec: dict[str, Any] = SPEC) -> Any:
    import keras

    keras.utils.set_random_seed(4)
    model = build_model(ModelSpec.model_validate(spec))
    model.fit(X, np.eye(2, dtype="float32")[np.arange(32) % 2], epochs=2, verbose=0)
    return model


def publish(store: ModelStore, model: Any, record: Callable[[dict[str, Any]], Any] | None = None,
            name: str = "m") -> int:  # fmt: skip
    """`model` as the next version; `record` may change its serving record
    (None drops it, as before records were kept)."""
    serving = serving_record(model, METADATA["input_shape"])
    metadata = dict(METADATA)
    if record is not None:
        metadata["serving"] = record(serving)
    return store.publish(name, model.save, metadata)


def as_made(serving: dict[str, Any]) -> dict[str, Any]:
    return serving


@pytest.fixture
def keras_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files Keras is asked to load (it loads them still)."""
    import keras

    asked: list[str] = []
    load_model = keras.saving.load_model

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(path))
        return load_model(path, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", counted)
    return asked


def keras_outputs(model: Any) -> np.ndarray:
    return np.asarray(model(X, training=False))


def test_a_recorded_version_is_read_without_keras(
    store: ModelStore, keras_loads: list[str]
) -> None:
    model = trained()
    version = publish(store, model, as_made)
    loaded = load_version(store, "m", version)
    assert keras_loads == [] and loaded.engine == "numpy"
    np.testing.assert_allclose(loaded.predict(X), keras_outputs(model), rtol=1e-5, atol=1e-5)
    # Keras' penalty for the l2 kernel regularizer, recorded at publish.
    assert loaded.regularization == pytest.approx(regularization_penalty(model), rel=1e-6)
    assert loaded.regularization > 0
    assert "history" not in loaded.metadata and "serving" not in loaded.metadata


def test_a_version_without_a_record_is_loaded_with_keras_as_before(
    store: ModelStore, keras_loads: list[str]
) -> None:
    model = trained()
    version = publish(store, model, record=None)
    loaded = load_version(store, "m", version)
    assert keras_loads == [str(store.model_file("m", version))]
    assert loaded.engine == "numpy"  # the pass read off Keras' model matched it
    np.testing.assert_allclose(loaded.predict(X), keras_outputs(model), rtol=1e-5, atol=1e-5)
    assert loaded.regularization == pytest.approx(regularization_penalty(model), rel=1e-6)


def test_a_record_the_numpy_pass_disagrees_with_sends_the_load_to_keras(
    store: ModelStore, keras_loads: list[str]
) -> None:
    def tampered(serving: dict[str, Any]) -> dict[str, Any]:
        outputs = np.asarray(serving["outputs"]) + 1e-3
        return {**serving, "outputs": outputs.tolist()}

    model = trained()
    version = publish(store, model, tampered)
    loaded = load_version(store, "m", version)
    assert len(keras_loads) == 1
    np.testing.assert_allclose(loaded.predict(X), keras_outputs(model), rtol=1e-5, atol=1e-5)


def test_a_record_of_another_probe_is_not_used(store: ModelStore, keras_loads: list[str]) -> None:
    version = publish(store, trained(), lambda serving: {**serving, "probe": "another"})
    load_version(store, "m", version)
    assert len(keras_loads) == 1


def test_a_layer_without_a_numpy_step_is_served_by_keras(
    store: ModelStore, keras_loads: list[str]
) -> None:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.GaussianNoise(0.5),
                              keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(X, np.eye(2, dtype="float32")[np.arange(32) % 2], epochs=1, verbose=0)
    loaded = load_version(store, "m", publish(store, model, as_made))
    assert len(keras_loads) == 1 and loaded.engine == "keras"
    np.testing.assert_allclose(loaded.predict(X), keras_outputs(model), rtol=1e-5, atol=1e-5)


def test_a_garbled_file_is_a_clear_load_failure(store: ModelStore, keras_loads: list[str]) -> None:
    serving = serving_record(trained(), METADATA["input_shape"])
    garbled = {**METADATA, "serving": serving}
    version = store.publish("m", lambda path: path.write_bytes(b"PK\x03\x04garbled" * 50), garbled)
    with pytest.raises(InvalidModelFile, match="not a .keras archive"):
        load_version(store, "m", version)
    with pytest.raises(ServiceUnavailable, match="failed to load: InvalidModelFile: The model "):
        Predictor(store).get("m", version)
    assert keras_loads == []


# Run in a child process of its own: tracemalloc counts every thread's
# allocations, and a test process holds other tests' threads (catalog
# subscribers, loaders) that allocate while it measures.
TRACE_LOADS = """
import gc, sys, tracemalloc
from pathlib import Path
from models.serving.model_loading import load_version
from models.storage.blobs import FolderBlobs
from models.storage.model_store import ModelStore
store = ModelStore(FolderBlobs(Path(sys.argv[1])))
name, version, copies = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
load_version(store, name, version)  # imports and caches are not a version's
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
kept = [load_version(store, name, version) for _ in range(copies)]
gc.collect()
print((tracemalloc.get_traced_memory()[0] - before) / copies)
"""


def traced_bytes_kept(store: ModelStore, name: str, version: int, copies: int = 10) -> float:
    """What tracemalloc sees each of `copies` loads of the version keep."""
    root = store.blobs.root  # type: ignore[attr-defined]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run(
        [sys.executable, "-c", TRACE_LOADS, str(root), name, str(version), str(copies)],
        capture_output=True, text=True, env=environment, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("units", [4, 512])
def test_nbytes_is_what_a_numpy_load_keeps_within_a_third(store: ModelStore, units: int) -> None:
    """From a few kilobytes (the overhead: metadata, closures) to a megabyte (weights)."""
    wide = {"type": "dense", "units": units, "activation": "relu"}
    spec = {**SPEC, "layers": [wide, wide, *SPEC["layers"]]}
    version = publish(store, trained(spec), as_made)
    loaded = load_version(store, "m", version)
    assert loaded.engine == "numpy"
    kept = traced_bytes_kept(store, "m", version)
    assert kept / 1.33 <= loaded.nbytes <= kept * 1.33, (loaded.nbytes, kept)


def test_nbytes_of_a_keras_served_version_is_above_what_tracemalloc_sees(
    store: ModelStore,
) -> None:
    """tracemalloc sees Keras' Python objects, not the backend's buffers: a
    floor. By RSS (models.serving.footprint) a small Keras model holds about
    twice what it sees; the estimate is within 3x of it."""
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.GaussianNoise(0.5),
                              keras.layers.Dense(8), keras.layers.Dense(2)])  # fmt: skip
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, np.zeros((32, 2), dtype="float32"), epochs=1, verbose=0)
    version = publish(store, model, as_made)
    loaded = load_version(store, "m", version)
    assert loaded.engine == "keras"
    kept = traced_bytes_kept(store, "m", version)
    assert kept <= loaded.nbytes <= kept * 3, (loaded.nbytes, kept)
