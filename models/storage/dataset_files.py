"""Stored datasets: `<root>/<id>/` holds `data.npz` (the arrays) and
`record.json` (what the API shows about them).

A dataset is written into a folder beside the others and renamed into place,
so a reader sees all of a dataset or none of it, and of two identical uploads
racing, one wins and the other finds it stored. Ids are checked against their
pattern before any path is built from them. What a dataset is, and how an
upload becomes one, is the datasets room's (models.datasets).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from models.ids import is_dataset_id
from models.records import DatasetRecord

DATA_FILE = "data.npz"
RECORD_FILE = "record.json"


class DatasetFiles:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def exists(self, dataset_id: str) -> bool:
        return self._path(dataset_id).is_dir()

    def put(self, dataset_id: str, x: np.ndarray, y: np.ndarray, record: DatasetRecord) -> bool:
        """Store a dataset; False when an identical one was stored first."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            np.savez(staging / DATA_FILE, x=x, y=y)
            (staging / RECORD_FILE).write_text(json.dumps(record))
            try:
                os.rename(staging, self._path(dataset_id))
            except OSError:
                if not self.exists(dataset_id):
                    raise
                return False  # an identical upload won the race
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def record(self, dataset_id: str) -> DatasetRecord:
        """The stored record; FileNotFoundError when there is none."""
        return json.loads((self._path(dataset_id) / RECORD_FILE).read_text())

    def arrays(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The stored x and y; FileNotFoundError when there are none."""
        with np.load(self._path(dataset_id) / DATA_FILE, allow_pickle=False) as npz:
            return npz["x"], npz["y"]

    def delete(self, dataset_id: str) -> None:
        """FileNotFoundError when there is no such dataset."""
        # Moved aside first, so a reader never sees a half-deleted dataset.
        trash = self.root / f".tmp-{uuid.uuid4().hex}"
        os.rename(self._path(dataset_id), trash)
        shutil.rmtree(trash, ignore_errors=True)

    def records(self) -> list[DatasetRecord]:
        records = []
        for entry in self.root.iterdir() if self.root.is_dir() else []:
            if is_dataset_id(entry.name):
                try:
                    records.append(json.loads((entry / RECORD_FILE).read_text()))
                except (FileNotFoundError, NotADirectoryError):  # deleted while listing
                    continue
        return records

    def _path(self, dataset_id: str) -> Path:
        if not is_dataset_id(dataset_id):
            raise FileNotFoundError(dataset_id)  # before any path is built from user input
        return self.root / dataset_id
