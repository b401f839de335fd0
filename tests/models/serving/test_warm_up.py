"""Warm before ready: every version runs the serving path before it goes in the
predictor's cache, and the start-up warm-up reports its progress, counting a
model that fails to load as done (with a warning) rather than waiting on it."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.errors import ServiceUnavailable  # noqa: E402
from models.serving.loaded_model import LoadedModel  # noqa: E402
from models.serving.predictor import Predictor  # noqa: E402
from models.serving.warm_up import WARM_ROWS, WarmUp, warm_up  # noqa: E402
from models.storage.blobs import FolderBlobs  # noqa: E402
from models.storage.model_store import ModelStore  # noqa: E402
from models.training.class_labels import LabelEncoding  # noqa: E402
from tests.models.serving.test_predictor import publish, publish_broken  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(FolderBlobs(tmp_path))


def test_each_version_is_warmed_before_it_is_served(store: ModelStore) -> None:
    publish(store)
    seen: list[tuple[int, int]] = []

    def warm(loaded: LoadedModel) -> None:
        # Not in the cache yet: no request can reach it while it warms.
        seen.append((loaded.version, predictor.loaded_count()))
        warm_up(loaded)

    predictor = Predictor(store, warm=warm)
    assert predictor.get("m").version == 1
    publish(store)
    predictor.get("m", 2)
    assert seen == [(1, 0), (2, 1)]
    predictor.get("m", 2)  # from the cache: not warmed again
    assert len(seen) == 2


def test_warm_up_runs_the_serving_path() -> None:
    """The JSON body read, the forward pass the version serves with, and the
    decoding of its labels, at each warm-up batch size."""
    rows: list[int] = []

    def forward(x: np.ndarray) -> np.ndarray:
        rows.append(len(x))
        return np.tile(np.array([[0.2, 0.8]], dtype=np.float32), (len(x), 1))

    metadata = {"task": "categorical", "classes": ["no", "yes"], "input_shape": [3], "outputs": 2}
    encoding = LabelEncoding(task="categorical", classes=["no", "yes"], one_hot=True)
    decoded: list[object] = []

    class Recording(LoadedModel):
        def run(self, x: np.ndarray):  # type: ignore[no-untyped-def]
            prediction = super().run(x)
            decoded.extend(prediction.labels or [])
            return prediction

    warm_up(Recording("m", 1, metadata, encoding, forward, "numpy", nbytes=0))
    assert rows == list(WARM_ROWS)
    assert decoded == ["yes"] * sum(WARM_ROWS)


def test_a_version_that_fails_its_warm_up_is_not_served(store: ModelStore) -> None:
    publish(store)
    publish(store)

    def warm(loaded: LoadedModel) -> None:
        if loaded.version == 2:
            raise RuntimeError("the forward pass broke")
        warm_up(loaded)

    predictor = Predictor(store, warm=warm)
    with pytest.raises(ServiceUnavailable, match="the forward pass broke"):
        predictor.get("m", 2)
    # Latest: the newest version that loads and warms.
    assert predictor.get("m").version == 1


def test_the_warm_up_counts_failed_models_as_done(store: ModelStore) -> None:
    publish(store, name="a-good")
    publish_broken(store, name="b-broken")
    predictor = Predictor(store)
    predictor.warmup.begin()
    assert predictor.warmup.waiting() == "warming up: listing the models"
    predictor.preload()
    assert predictor.warmup.done and predictor.warmup.waiting() is None
    assert predictor.ready("a-good") is not None
    (summary,) = predictor.warmup.warnings(detailed=False)
    assert summary.startswith("model 'b-broken' failed to load at start"), summary
    (detailed,) = predictor.warmup.warnings(detailed=True)
    assert detailed.startswith(summary + ": ") and "b-broken" in detailed, detailed


def test_an_older_version_serving_in_place_of_a_broken_newest_is_reported(
    store: ModelStore,
) -> None:
    publish(store)
    publish_broken(store)
    predictor = Predictor(store)
    predictor.start_warm_up()
    assert predictor.warmup.wait(120)
    assert predictor.get("m").version == 1
    (warning,) = predictor.warmup.warnings(detailed=False)
    assert warning == "model 'm' serves version 1: version 2 failed to load"


def test_more_models_than_the_memory_holds_are_reported(store: ModelStore) -> None:
    for name in ("a", "b", "c"):
        publish(store, name=name)
    one = Predictor(store)
    one.get("a")
    # Room for two of the three, as the budget is counted.
    predictor = Predictor(store, budget_bytes=one.memory.held_bytes * 5 // 2)
    predictor.warmup.begin()
    predictor.preload()
    assert predictor.loaded_count() == 2
    (warning,) = predictor.warmup.warnings(detailed=False)
    assert warning.startswith("1 versions not loaded at start: the model memory ("), warning
    # The third is served on demand, in place of the least recently used.
    assert predictor.get("c").version == 1
    assert predictor.loaded_count() == 2 and predictor.memory.evictions == 1


def test_progress_counts_loaded_and_failed_models() -> None:
    progress = WarmUp()
    assert progress.done and progress.waiting() is None  # nothing to wait for
    progress.begin()
    progress.expect(3)
    progress.loaded()
    progress.failed("x", "OSError: gone")
    assert progress.waiting() == "warming up: 2 of 3 models loaded"
    assert not progress.wait(0)
    progress.finish()
    assert progress.wait(0) and progress.waiting() is None


def test_a_predictor_with_no_models_is_ready_at_once(store: ModelStore) -> None:
    predictor = Predictor(store)
    predictor.start_warm_up()
    # Listed in the call itself (a folder): done before any request can come.
    assert predictor.warmup.done
