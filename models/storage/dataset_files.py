"""Stored datasets: `datasets/<id>/` holds `data.npz` (the arrays) and
`record.json` (what the API shows about them), in the store (models.storage.blobs).

The arrays go first and the record last, with a conditional create: a
dataset exists exactly when its record does, so a reader sees all of a
dataset or none of it, and of two identical uploads racing, one wins and the
other finds it stored. Ids are checked against their pattern before any key
is built from them. What a dataset is, and how an upload becomes one, is the
datasets room's (models.datasets).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from models.ids import is_dataset_id
from models.records import DatasetRecord
from models.storage.blobs import Blobs

DATA_FILE = "data.npz"
RECORD_FILE = "record.json"


class Stored(NamedTuple):
    """A dataset's place in listings: when its record was stored (µs since the
    epoch, as the store's listing says), then its id. Ordered as tuples."""

    stored_us: int
    dataset_id: str


class DatasetFiles:
    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def exists(self, dataset_id: str) -> bool:
        return self.blobs.exists(self._key(dataset_id, RECORD_FILE))

    def put(self, dataset_id: str, x: np.ndarray, y: np.ndarray, record: DatasetRecord) -> bool:
        """Store a dataset; False when an identical one was stored first."""
        with tempfile.TemporaryDirectory(prefix="fitserve-dataset-") as staging:
            local = Path(staging) / DATA_FILE
            np.savez(local, x=x, y=y)
            # Large arrays go up in parts (S3's multipart upload).
            self.blobs.put_file(self._key(dataset_id, DATA_FILE), local)
        return self.blobs.create(self._key(dataset_id, RECORD_FILE), json.dumps(record).encode())

    def record(self, dataset_id: str) -> DatasetRecord:
        """The stored record; FileNotFoundError when there is none."""
        return json.loads(self.blobs.get(self._key(dataset_id, RECORD_FILE)))

    def arrays(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The stored x and y; FileNotFoundError when there are none."""
        if not self.exists(dataset_id):
            raise FileNotFoundError(dataset_id)
        # The id hashes the upload, so a local copy of the arrays never goes stale.
        with np.load(self.blobs.local_file(self._key(dataset_id, DATA_FILE)),
                     allow_pickle=False) as npz:  # fmt: skip
            return npz["x"], npz["y"]

    def delete(self, dataset_id: str) -> None:
        """FileNotFoundError when there is no such dataset."""
        if not self.exists(dataset_id):
            raise FileNotFoundError(dataset_id)
        # The record first, so a reader never sees a half-deleted dataset.
        self.blobs.delete(self._key(dataset_id, RECORD_FILE))
        self.blobs.delete(self._key(dataset_id, DATA_FILE))

    def page(
        self, limit: int | None, after: Stored | None = None
    ) -> tuple[list[DatasetRecord], Stored | None]:
        """Up to `limit` records (None: all), newest stored first, from the one
        after `after` on; and the place of the last one when more follow. One
        listing, then a read per record shown: the order is the listing's."""
        stored = sorted(self._stored(), reverse=True)
        if after is not None:
            stored = [entry for entry in stored if entry < after]
        records: list[DatasetRecord] = []
        last = None
        for entry in stored:
            if len(records) == limit:
                return records, last
            try:
                records.append(self.record(entry.dataset_id))
                last = entry
            except FileNotFoundError:  # deleted while listing
                continue
        return records, None

    def forget_incomplete(self, older_than_s: float) -> list[str]:
        """Delete the arrays of datasets whose record was never written (their
        upload was cut off in between), once older than `older_than_s`; returns
        their ids."""
        cutoff = time.time() - older_than_s
        files: dict[str, dict[str, float]] = {}
        for key, modified in self.blobs.listing("datasets/"):
            parts = key.split("/")
            if len(parts) == 3 and is_dataset_id(parts[1]):
                files.setdefault(parts[1], {})[parts[2]] = modified
        forgotten = []
        for dataset_id, written in sorted(files.items()):
            if RECORD_FILE in written or written.get(DATA_FILE, cutoff) >= cutoff:
                continue
            if self.exists(dataset_id):  # the same upload again, just now
                continue
            self.blobs.delete(self._key(dataset_id, DATA_FILE))
            forgotten.append(dataset_id)
        return forgotten

    def _stored(self) -> list[Stored]:
        found = []
        for key, modified in self.blobs.listing("datasets/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == RECORD_FILE and is_dataset_id(parts[1]):
                found.append(Stored(round(modified * 1_000_000), parts[1]))
        return found

    def _key(self, dataset_id: str, file: str) -> str:
        if not is_dataset_id(dataset_id):
            raise FileNotFoundError(dataset_id)  # before any key is built from user input
        return f"datasets/{dataset_id}/{file}"
