"""Batch prediction results: one NPZ per prediction job, at `results/<job id>.npz`.

A result is served a chunk of rows at a time (StoredResult): its members are
stored uncompressed, so each is read in order straight from the file, and a
result of a hundred million values never sits whole in the API's memory.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import NotFound
from models.ids import is_job_id
from models.storage.blobs import Blobs


class ResultStore:
    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def save(self, job_id: str, outputs: np.ndarray, labels: list[Any] | None) -> None:
        arrays = {"outputs": outputs}
        if labels is not None:  # str or int labels: loadable without pickle
            arrays["labels"] = np.asarray(labels)
        # Through a file, not a buffer of it: the archive is as large as the outputs.
        with tempfile.TemporaryDirectory(prefix="fitserve-result-") as staging:
            local = Path(staging) / "result.npz"
            np.savez(local, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
            self.blobs.put_file(self._key(job_id), local)

    def open(self, job_id: str) -> StoredResult:
        """The stored result, to read a chunk at a time; close it when done."""
        key = self._key(job_id)
        for attempt in range(2):
            try:
                path = self.blobs.local_file(key)
                archive = zipfile.ZipFile(path)
            except FileNotFoundError:  # none; or, in a bucket's cache, removed just now
                if attempt:
                    raise NotFound(
                        f"Job {job_id} has no stored result. Received: {job_id!r}"
                    ) from None
                continue
            if self.blobs.remote:
                # The open archive keeps the downloaded copy readable: results are
                # read once or twice, so the host's cache does not keep them.
                path.unlink(missing_ok=True)
            return StoredResult(archive)
        raise AssertionError("unreachable")

    def load(self, job_id: str) -> tuple[np.ndarray, list[Any] | None]:
        try:
            body = self.blobs.get(self._key(job_id))
        except FileNotFoundError:
            raise NotFound(f"Job {job_id} has no stored result. Received: {job_id!r}") from None
        with np.load(io.BytesIO(body), allow_pickle=False) as stored:
            labels = stored["labels"].tolist() if "labels" in stored else None
            return stored["outputs"], labels

    def delete(self, job_id: str) -> None:
        self.blobs.delete(self._key(job_id))

    def job_ids(self) -> list[str]:
        """The jobs that have a stored result."""
        names = (key.removeprefix("results/") for key in self.blobs.keys("results/"))
        return [name[:-4] for name in names if name.endswith(".npz") and is_job_id(name[:-4])]

    def _key(self, job_id: str) -> str:
        if not is_job_id(job_id):
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return f"results/{job_id}.npz"


class StoredResult:
    """One result's outputs (rows x outputs) and labels, read in chunks of rows."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._archive = archive
        with archive.open("outputs.npy") as member:
            shape, _, self.dtype = _npy_header(member)
        self.shape: tuple[int, ...] = tuple(shape)
        self.has_labels = "labels.npy" in archive.namelist()

    def output_chunks(self, rows: int) -> Iterator[np.ndarray]:
        return _chunks(self._archive, "outputs.npy", rows)

    def label_chunks(self, rows: int) -> Iterator[list[Any]]:
        return (chunk.tolist() for chunk in _chunks(self._archive, "labels.npy", rows))

    def close(self) -> None:
        self._archive.close()


def _npy_header(member: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(member)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)  # fmt: skip
    shape, fortran_order, dtype = read(member)
    return shape, fortran_order, dtype


def _chunks(archive: zipfile.ZipFile, name: str, rows: int) -> Iterator[np.ndarray]:
    """The member's array, `rows` rows at a time, read in order from the archive."""
    with archive.open(name) as member:
        shape, fortran_order, dtype = _npy_header(member)
        if fortran_order:  # never written by save(): read whole
            yield np.lib.format.read_array(member, allow_pickle=False)
            return
        row_shape = shape[1:]
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
        for start in range(0, shape[0], rows):
            count = min(rows, shape[0] - start)
            data = member.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise EOFError(f"{name} of the stored result ends at row {start}")
            yield np.frombuffer(data, dtype).reshape(count, *row_shape)
