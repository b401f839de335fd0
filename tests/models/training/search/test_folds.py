"""The rows of k-fold validation and how a metric over the folds is summarized."""

from __future__ import annotations

import numpy as np
import pytest

from models.training.search.folds import fold_rows, fold_summary, merge_fold_logs


@pytest.mark.parametrize(("rows", "k"), [(150, 5), (103, 4), (10, 10), (2, 2), (569, 7)])
def test_folds_partition_the_rows_into_near_equal_sorted_blocks(rows: int, k: int) -> None:
    folds = fold_rows(rows, k)
    assert len(folds) == k
    validated = np.concatenate([validation for _, validation in folds])
    assert sorted(validated) == list(range(rows))  # every row validates exactly once
    for training, validation in folds:
        assert list(training) == sorted(training) and list(validation) == sorted(validation)
        assert sorted(np.concatenate([training, validation])) == list(range(rows))
    sizes = [len(validation) for _, validation in folds]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # np.array_split: the larger blocks first


def test_folds_are_the_same_every_time_and_not_the_dataset_order() -> None:
    first, again = fold_rows(150, 5), fold_rows(150, 5)
    for fold, fold_again in zip(first, again, strict=True):
        np.testing.assert_array_equal(fold[0], fold_again[0])
        np.testing.assert_array_equal(fold[1], fold_again[1])
    # A permutation, not contiguous slices: sorted iris rows would leave a class out.
    assert list(first[0][1]) != list(range(30))


@pytest.mark.parametrize(("rows", "k"), [(100, 1), (100, 11), (3, 4)])
def test_impossible_folds_are_refused(rows: int, k: int) -> None:
    with pytest.raises(ValueError, match="Received"):
        fold_rows(rows, k)


def test_a_summary_is_plain_floats_with_the_population_std() -> None:
    summary = fold_summary([np.float32(1.0), 2.0, 4.0])  # type: ignore[list-item]
    assert summary == {
        "mean": pytest.approx(7 / 3),
        "std": pytest.approx(np.std([1.0, 2.0, 4.0])),
        "values": [1.0, 2.0, 4.0],
    }
    assert all(type(value) is float for value in summary["values"])  # type: ignore[union-attr]
    assert type(summary["mean"]) is float and type(summary["std"]) is float


def test_merged_logs_hold_the_fold_means_then_each_fold() -> None:
    merged = merge_fold_logs([{"loss": 1.0, "val_loss": 3.0}, {"loss": 2.0, "val_loss": 5.0}])
    assert merged == {
        "loss": 1.5, "val_loss": 4.0,
        "f1:loss": 1.0, "f1:val_loss": 3.0, "f2:loss": 2.0, "f2:val_loss": 5.0,
    }  # fmt: skip
