"""What writes cut off leave in the store, and its removal at start
(models.storage.debris), on a folder and on a bucket alike."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from models.storage.blobs import Blobs, FolderBlobs, S3Blobs
from models.storage.dataset_files import DatasetFiles
from models.storage.debris import DEBRIS_AGE_S, forget_debris

DAY_S = 86400
INCOMPLETE = "0123456789abcdef01234567"  # its arrays were stored, its record never
WHOLE = "89abcdef0123456789abcdef"


def two_days_old(path: Path) -> None:
    then = time.time() - 2 * DAY_S
    os.utime(path, (then, then))


def store_datasets(blobs: Blobs) -> None:
    files = DatasetFiles(blobs)
    x, y = np.zeros((2, 3)), np.array([0, 1])
    assert files.put(WHOLE, x, y, {"id": WHOLE})  # type: ignore[typeddict-item]
    files.put(INCOMPLETE, x, y, {"id": INCOMPLETE})  # type: ignore[typeddict-item]
    blobs.delete(f"datasets/{INCOMPLETE}/record.json")  # as if it was never written


def test_a_folder_stores_partial_files_go_once_they_are_old(tmp_path: Path) -> None:
    blobs = FolderBlobs(tmp_path / "store")
    blobs.put("models/m/1/model.keras", b"whole")
    old = tmp_path / "store" / "models" / "m" / "1" / f".tmp-{'a' * 32}"
    young = tmp_path / "store" / "results" / f".tmp-{'b' * 32}"
    lone = tmp_path / "store" / "checkpoints" / "x" / f".tmp-{'c' * 32}"
    for path in (old, young, lone):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a write")
    two_days_old(old)
    two_days_old(lone)
    not_ours = tmp_path / "store" / ".tmp-mine"
    not_ours.write_bytes(b"")
    two_days_old(not_ours)

    assert blobs.forget_partial_writes(DEBRIS_AGE_S) == 2
    assert not old.exists() and not lone.exists() and young.exists() and not_ours.exists()
    assert not (tmp_path / "store" / "checkpoints").exists()  # emptied folders go too
    assert blobs.get("models/m/1/model.keras") == b"whole"


def test_a_datasets_arrays_without_its_record_go_once_they_are_old(blobs: Blobs) -> None:
    store_datasets(blobs)
    # A bucket's times cannot be set back: there, `older_than_s` moves instead.
    if isinstance(blobs, FolderBlobs):
        assert DatasetFiles(blobs).forget_incomplete(DEBRIS_AGE_S) == []  # being written?
        two_days_old(blobs.root / "datasets" / INCOMPLETE / "data.npz")
        two_days_old(blobs.root / "datasets" / WHOLE / "data.npz")
        two_days_old(blobs.root / "datasets" / WHOLE / "record.json")
        age = DEBRIS_AGE_S
    else:
        assert DatasetFiles(blobs).forget_incomplete(3600) == []
        age = 0
    assert DatasetFiles(blobs).forget_incomplete(age) == [INCOMPLETE]
    assert sorted(blobs.keys("datasets/")) == [f"datasets/{WHOLE}/data.npz",
                                               f"datasets/{WHOLE}/record.json"]  # fmt: skip
    assert json.loads(blobs.get(f"datasets/{WHOLE}/record.json")) == {"id": WHOLE}


def test_a_buckets_incomplete_multipart_uploads_are_aborted(blobs: Blobs) -> None:
    if not isinstance(blobs, S3Blobs):
        return  # a folder has none (its partial files: above)
    blobs.put("results/kept.npz", b"whole")
    big = {"Bucket": blobs.bucket, "Key": f"{blobs.prefix}/datasets/big"}
    started = blobs.client.create_multipart_upload(**big)
    blobs.client.upload_part(**big, UploadId=started["UploadId"], PartNumber=1, Body=b"x" * 1024)
    cached = blobs.cache_dir / "models" / f".tmp-{'d' * 32}"  # a download cut off
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    two_days_old(cached)

    assert blobs.forget_partial_writes(3600) == 1  # the upload is younger than an hour
    assert not cached.exists()
    assert blobs.forget_partial_writes(0) == 1
    uploads = blobs.client.list_multipart_uploads(Bucket=blobs.bucket).get("Uploads", [])
    assert uploads == []
    assert list(blobs.keys("")) == ["results/kept.npz"]


def test_forget_debris_takes_every_kind(tmp_path: Path) -> None:
    blobs = FolderBlobs(tmp_path / "store")
    store_datasets(blobs)
    two_days_old(blobs.root / "datasets" / INCOMPLETE / "data.npz")
    partial = blobs.root / "datasets" / WHOLE / f".tmp-{'e' * 32}"
    partial.write_bytes(b"")
    two_days_old(partial)
    staging = tmp_path / "tmp"
    for name in ("fitserve-dataset-abc", "fitserve-publish-def", "other-ghi", "fitserve-new"):
        (staging / name).mkdir(parents=True)
        two_days_old(staging / name)
    (staging / "fitserve-dataset-young").mkdir()

    removed = forget_debris(blobs, staging=staging)

    assert removed == {"partial_writes": 1, "incomplete_datasets": 1, "staging_folders": 2}
    assert sorted(path.name for path in staging.iterdir()) == [
        "fitserve-dataset-young", "fitserve-new", "other-ghi"
    ]  # fmt: skip
    assert DatasetFiles(blobs).exists(WHOLE) and not (blobs.root / "datasets" / INCOMPLETE).exists()
