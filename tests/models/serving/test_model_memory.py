"""The model memory: versions held within a byte budget, the least recently
used dropped first, and never a version kept loaded (a latest or labelled
one) to make room for one that only may be loaded."""

from __future__ import annotations

import numpy as np

from models.serving.loaded_model import LoadedModel
from models.serving.model_memory import Key, ModelMemory
from models.training.class_labels import LabelEncoding

ENCODING = LabelEncoding(task="regression", classes=None, one_hot=False)


def version(name: str, number: int, nbytes: int) -> LoadedModel:
    def forward(x: np.ndarray) -> np.ndarray:
        return x

    metadata = {"input_shape": [1], "outputs": 1}
    return LoadedModel(name, number, metadata, ENCODING, forward, "numpy", nbytes)


def nobody_wants(key: Key) -> bool:
    return False


def test_the_least_recently_used_go_first_to_make_room() -> None:
    memory = ModelMemory(budget_bytes=300)
    for name in "abc":
        assert memory.put(version(name, 1, 100), nobody_wants, evict_wanted=True)
    assert memory.held_bytes == 300
    memory.get(("a", 1))  # used: "b" is now the least recently used
    assert memory.put(version("d", 1, 150), nobody_wants, evict_wanted=True)
    assert memory.keys() == [("a", 1), ("d", 1)]
    assert memory.held_bytes == 250 and memory.evictions == 2


def test_unwanted_versions_go_before_wanted_ones() -> None:
    memory = ModelMemory(budget_bytes=300)
    for number in (1, 2, 3):
        memory.put(version("m", number, 100), nobody_wants, evict_wanted=True)

    def latest_only(key: Key) -> bool:
        return key == ("m", 1)  # the least recently used, but kept

    assert memory.put(version("n", 1, 100), latest_only, evict_wanted=True)
    assert ("m", 1) in memory and ("m", 2) not in memory


def test_without_evict_wanted_a_version_that_does_not_fit_changes_nothing() -> None:
    memory = ModelMemory(budget_bytes=300)
    for name in "abc":
        memory.put(version(name, 1, 100), nobody_wants, evict_wanted=True)

    def everyone_wanted(key: Key) -> bool:
        return True

    assert not memory.put(version("d", 1, 100), everyone_wanted, evict_wanted=False)
    assert memory.keys() == [("a", 1), ("b", 1), ("c", 1)] and memory.evictions == 0
    assert memory.room(everyone_wanted) == 0
    assert memory.room(lambda key: key != ("b", 1)) == 100


def test_a_version_larger_than_the_budget_never_fits() -> None:
    memory = ModelMemory(budget_bytes=300)
    assert not memory.fits(301)
    assert not memory.put(version("big", 1, 301), nobody_wants, evict_wanted=True)
    assert len(memory) == 0 and memory.held_bytes == 0


def test_holding_a_version_again_counts_it_once() -> None:
    memory = ModelMemory(budget_bytes=300)
    memory.put(version("m", 1, 100), nobody_wants, evict_wanted=True)
    memory.put(version("m", 1, 120), nobody_wants, evict_wanted=True)
    assert len(memory) == 1 and memory.held_bytes == 120


def test_dropped_versions_give_their_bytes_back() -> None:
    memory = ModelMemory(budget_bytes=300)
    for number in (1, 2):
        memory.put(version("m", number, 100), nobody_wants, evict_wanted=True)
    assert memory.drop(lambda key: key[1] == 1) == [("m", 1)]
    assert memory.held_bytes == 100 and memory.keys() == [("m", 2)]
