"""The predictor: the fast forward pass, its Keras fallback, and hot swaps that
never replace a working version with a broken one."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.errors import ServiceUnavailable  # noqa: E402
from models.serving.predictor import Predictor  # noqa: E402
from models.serving.serving_record import serving_record  # noqa: E402
from models.storage.blobs import FolderBlobs  # noqa: E402
from models.storage.model_store import ModelStore  # noqa: E402
from models.training.builder import build_model  # noqa: E402
from models.training.spec import ModelSpec  # noqa: E402

SPEC = {
    "input_shape": [3],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"},
               {"type": "dense", "units": 2, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy"},
    "fit": {"epochs": 1},
}  # fmt: skip
METADATA = {"task": "categorical", "classes": ["no", "yes"], "input_shape": [3], "outputs": 2}
X = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(FolderBlobs(tmp_path))


def publish(store: ModelStore, model: Any = None, name: str = "m") -> int:
    import keras

    keras.utils.set_random_seed(len(store.versions(name)))
    model = model or build_model(ModelSpec.model_validate(SPEC))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    # A step of training, as every published model has had (an untrained
    # compiled model saves an optimizer that Keras then refuses to load).
    model.fit(X, np.eye(2, dtype="float32")[[0, 1, 0, 1, 1]], epochs=1, verbose=0)
    # As a worker publishes it: with the record the numpy pass is checked against.
    metadata = {**METADATA, "serving": serving_record(model, METADATA["input_shape"])}
    return store.publish(name, model.save, metadata)


def publish_broken(store: ModelStore, name: str = "m") -> int:
    return store.publish(name, lambda path: path.write_bytes(b"not a keras file"), METADATA)


def keras_predict(store: ModelStore, version: int) -> np.ndarray:
    import keras

    return np.asarray(keras.saving.load_model(store.model_file("m", version)).predict(X, verbose=0))


def test_builder_models_run_on_the_numpy_pass_and_match_keras(store: ModelStore) -> None:
    version = publish(store)
    predictor = Predictor(store)
    loaded = predictor.get("m")
    assert loaded.engine == "numpy"
    prediction = predictor.predict("m", None, X)
    np.testing.assert_allclose(
        prediction.outputs, keras_predict(store, version), rtol=1e-5, atol=1e-5
    )
    assert prediction.labels == [["no", "yes"][i] for i in prediction.outputs.argmax(axis=1)]


def test_a_layer_without_a_numpy_pass_is_served_by_keras(store: ModelStore) -> None:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.GaussianNoise(0.5),
                              keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    version = publish(store, model)
    predictor = Predictor(store)
    assert predictor.get("m").engine == "keras"
    outputs = predictor.predict("m", None, X).outputs
    np.testing.assert_allclose(outputs, keras_predict(store, version), rtol=1e-5, atol=1e-5)


def test_large_batches_are_predicted_in_chunks(store: ModelStore) -> None:
    publish(store)
    x = np.random.default_rng(2).normal(size=(20_000, 3)).astype("float32")
    loaded = Predictor(store).get("m")
    np.testing.assert_array_equal(loaded.predict(x)[-5:], loaded.forward(x[-5:]))


def wait_for_version(predictor: Predictor, version: int, timeout_s: float = 30) -> None:
    """Until the latest version served is `version` (a deadline, not a timing:
    the swap takes ~0.1-0.3 s on a quiet machine, over a second on a busy one)."""
    started = time.monotonic()
    while predictor.get("m").version != version:
        assert time.monotonic() - started < timeout_s, f"latest never moved to {version}"
        time.sleep(0.01)


def test_latest_moves_to_a_new_version_without_blocking(store: ModelStore) -> None:
    publish(store)
    predictor = Predictor(store)
    assert predictor.get("m").version == 1
    publish(store)
    assert predictor.get("m").version == 1  # v2 loads aside; v1 answers meanwhile
    wait_for_version(predictor, 2)


def test_a_broken_version_never_replaces_a_working_one(store: ModelStore) -> None:
    publish(store)
    predictor = Predictor(store)
    assert predictor.get("m").version == 1
    publish_broken(store)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert predictor.get("m").version == 1
        time.sleep(0.05)
    with pytest.raises(ServiceUnavailable, match="version 2 failed to load"):
        predictor.get("m", 2)


def test_a_fresh_predictor_skips_a_broken_newest_version(store: ModelStore) -> None:
    publish(store)
    publish_broken(store)
    assert Predictor(store).get("m").version == 1


def test_no_loadable_version_is_unavailable(store: ModelStore) -> None:
    publish_broken(store)
    with pytest.raises(ServiceUnavailable, match="No version"):
        Predictor(store).get("m")


def test_a_model_file_changed_after_publishing_is_never_loaded(store: ModelStore) -> None:
    publish(store)
    publish(store)
    with store.blobs.local_file("models/m/2/model.keras").open("ab") as handle:
        handle.write(b"tampered")
    predictor = Predictor(store)
    assert predictor.get("m").version == 1  # the working version keeps serving
    with pytest.raises(ServiceUnavailable, match="does not match the hash"):
        predictor.get("m", 2)
