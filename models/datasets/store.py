"""Datasets by content: an upload is parsed, described and stored once.

The id hashes the uploaded bytes (and a CSV's target column), so the same
upload is stored once; the bytes go through the storage room
(models.storage.dataset_files).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from models import errors
from models.datasets.dataset import Dataset
from models.datasets.npz_format import MAX_ARRAY_BYTES
from models.datasets.parsing import format_of, parse_upload
from models.datasets.problems import error
from models.datasets.target import describe_target
from models.errors import NotFound, ValidationFailed
from models.ids import is_dataset_id
from models.records import DatasetRecord
from models.storage.blobs import Blobs
from models.storage.dataset_files import DatasetFiles, Stored


class DatasetStore:
    """Datasets, keyed by an id derived from the uploaded bytes.

    `max_array_bytes` bounds what one compressed NPZ upload may unpack to (and be
    stored as): the API sets it from its upload limit."""

    def __init__(self, blobs: Blobs, max_array_bytes: int = MAX_ARRAY_BYTES) -> None:
        self.files = DatasetFiles(blobs)
        self.max_array_bytes = max_array_bytes

    def save(
        self, body: bytes | bytearray, content_type: str, target: str | None = None
    ) -> tuple[DatasetRecord, bool]:
        content = hashlib.sha256(body)
        keyed = content.copy()
        if format_of(content_type) == "csv":  # the same CSV with another label is another dataset
            keyed.update(b"\0target=" + (target or "").encode())
        dataset_id = keyed.hexdigest()[:24]
        if self.files.exists(dataset_id):
            return self.get(dataset_id), False
        dataset, fmt, column = parse_upload(body, content_type, target, self.max_array_bytes)
        record: DatasetRecord = {
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
        if not self.files.put(dataset_id, dataset.x, dataset.y, record):
            return self.get(dataset_id), False  # an identical upload won the race
        return record, True

    def get(self, dataset_id: str) -> DatasetRecord:
        try:
            return self.files.record(dataset_id)
        except FileNotFoundError:
            raise _not_found(dataset_id) from None

    def load(self, dataset_id: str) -> Dataset:
        try:
            x, y = self.files.arrays(dataset_id)
        except FileNotFoundError:
            raise _not_found(dataset_id) from None
        return Dataset(x=x, y=y)

    def delete(self, dataset_id: str) -> None:
        try:
            self.files.delete(dataset_id)
        except FileNotFoundError:
            raise _not_found(dataset_id) from None

    def forget_incomplete(self, older_than_s: float) -> list[str]:
        """Drop the arrays of uploads cut off before their record was written."""
        return self.files.forget_incomplete(older_than_s)

    def page(
        self, limit: int = 50, page_token: str | None = None
    ) -> tuple[list[DatasetRecord], str | None]:
        """Datasets newest stored first, `limit` at a time, from the one after
        the page `page_token` ended (none: the first page); returns (page,
        token of the next page or None). A token names the place of the last
        dataset shown, so a page holds the same datasets whatever was uploaded
        or deleted since the one before. Reads the records it returns, and
        one listing: the store's times order it (to its clock's resolution,
        then by id), not the records' `created_at`."""
        after = _place(page_token) if page_token else None
        records, last = self.files.page(limit, after)
        return records, None if last is None else f"{last.stored_us}-{last.dataset_id}"

    def list(self) -> list[DatasetRecord]:
        """Every dataset, newest created first: reads every record (the API
        reads a page at a time instead)."""
        records, _ = self.files.page(limit=None)
        return sorted(records, key=lambda r: (r["created_at"], r["id"]), reverse=True)


def _place(page_token: str) -> Stored:
    stored_us, _, dataset_id = page_token.partition("-")
    digits = stored_us.isascii() and stored_us.isdigit() and len(stored_us) <= 20
    if not digits or not is_dataset_id(dataset_id):
        raise error(
            ValidationFailed, [], "page_token is not a page token",
            "the next_page_token of a page before", repr(page_token[:80]), argument="page_token",
        )  # fmt: skip
    return Stored(int(stored_us), dataset_id)


def _not_found(dataset_id: object) -> errors.FitserveError:
    return error(
        NotFound,
        [],
        f"No dataset has id {dataset_id!r}",
        "the id of a stored dataset (24 lowercase hex digits)",
        repr(dataset_id),
        argument="dataset_id",
    )
