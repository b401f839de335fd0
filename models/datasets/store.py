"""Storing parsed datasets on disk by content, so the same upload is stored once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models import errors
from models.datasets.dataset import Dataset
from models.datasets.npz_format import MAX_ARRAY_BYTES
from models.datasets.parsing import format_of, parse_upload
from models.datasets.problems import error
from models.datasets.target import describe_target
from models.errors import NotFound

DATASET_ID = re.compile(r"[0-9a-f]{24}")  # the first 24 hex digits of a SHA-256


class DatasetStore:
    """Datasets under `<root>/<id>/`, where the id is derived from the uploaded bytes.

    `max_array_bytes` bounds what one compressed NPZ upload may unpack to (and be
    stored as): the API sets it from its upload limit."""

    def __init__(self, root: Path, max_array_bytes: int = MAX_ARRAY_BYTES) -> None:
        self.root = Path(root)
        self.max_array_bytes = max_array_bytes

    def save(
        self, body: bytes, content_type: str, target: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        content = hashlib.sha256(body)
        keyed = content.copy()
        if format_of(content_type) == "csv":  # the same CSV with another label is another dataset
            keyed.update(b"\0target=" + (target or "").encode())
        dataset_id = keyed.hexdigest()[:24]
        if (self.root / dataset_id).is_dir():
            return self.get(dataset_id), False
        dataset, fmt, column = parse_upload(body, content_type, target, self.max_array_bytes)
        record = {
            "id": dataset_id,
            "rows": len(dataset.x),
            "x_shape": list(dataset.x.shape[1:]),
            "x_dtype": str(dataset.x.dtype),
            "target": {**describe_target(dataset.y), "column": column},
            "sha256": content.hexdigest(),
            "format": fmt,
            "bytes": len(body),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        # Built aside and renamed into place, so readers see all of a dataset or none of it.
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            np.savez(staging / "data.npz", x=dataset.x, y=dataset.y)
            (staging / "record.json").write_text(json.dumps(record))
            try:
                os.rename(staging, self.root / dataset_id)
            except OSError:
                if not (self.root / dataset_id).is_dir():
                    raise
                return self.get(dataset_id), False  # an identical upload won the race
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return record, True

    def get(self, dataset_id: str) -> dict[str, Any]:
        try:
            return json.loads((self._path(dataset_id) / "record.json").read_text())
        except FileNotFoundError:
            raise _not_found(dataset_id) from None

    def load(self, dataset_id: str) -> Dataset:
        try:
            with np.load(self._path(dataset_id) / "data.npz", allow_pickle=False) as npz:
                return Dataset(x=npz["x"], y=npz["y"])
        except FileNotFoundError:
            raise _not_found(dataset_id) from None

    def delete(self, dataset_id: str) -> None:
        # Moved aside first, so a reader never sees a half-deleted dataset.
        trash = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            os.rename(self._path(dataset_id), trash)
        except FileNotFoundError:
            raise _not_found(dataset_id) from None
        shutil.rmtree(trash, ignore_errors=True)

    def _path(self, dataset_id: str) -> Path:
        if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
            raise _not_found(dataset_id)  # before any path is built from user input
        return self.root / dataset_id

    def list(self) -> list[dict[str, Any]]:
        records = []
        for entry in self.root.iterdir() if self.root.is_dir() else []:
            if DATASET_ID.fullmatch(entry.name):
                try:
                    records.append(json.loads((entry / "record.json").read_text()))
                except (FileNotFoundError, NotADirectoryError):  # deleted while listing
                    continue
        return sorted(records, key=lambda r: (r["created_at"], r["id"]), reverse=True)


def _not_found(dataset_id: object) -> errors.FitserveError:
    return error(
        NotFound,
        ["path", "dataset_id"],
        f"No dataset has id {dataset_id!r}",
        "the id of a stored dataset (24 lowercase hex digits)",
        repr(dataset_id),
    )
