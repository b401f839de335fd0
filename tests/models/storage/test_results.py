"""Batch results: saved whole, read back a chunk of rows at a time."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import NotFound
from models.ids import new_job_id
from models.storage.blobs import Blobs, S3Blobs
from models.storage.results import ResultStore

OUTPUTS = np.random.default_rng(0).random((1000, 3), dtype=np.float32)


@pytest.mark.parametrize("labels", [["cat", "dog"] * 500, [0, 1] * 500, None])
def test_a_result_reads_back_in_chunks(blobs: Blobs, labels: list[object] | None) -> None:
    store = ResultStore(blobs)
    job_id = new_job_id()
    store.save(job_id, OUTPUTS, labels)
    result = store.open(job_id)
    try:
        assert (result.shape, result.dtype, result.has_labels) == (
            (1000, 3), np.float32, labels is not None
        )  # fmt: skip
        chunks = list(result.output_chunks(64))
        assert [len(chunk) for chunk in chunks] == [64] * 15 + [40]
        np.testing.assert_array_equal(np.concatenate(chunks), OUTPUTS)
        if labels is not None:
            assert [label for chunk in result.label_chunks(64) for label in chunk] == labels
    finally:
        result.close()
    if isinstance(blobs, S3Blobs):  # the downloaded copy is not kept
        assert not list(blobs.cache_dir.rglob(f"{job_id}*"))
    assert store.load(job_id)[1] == labels


def test_a_result_that_was_never_stored_is_not_found(blobs: Blobs) -> None:
    with pytest.raises(NotFound):
        ResultStore(blobs).open(new_job_id())
