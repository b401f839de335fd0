"""Batch prediction results: one NPZ per prediction job, at `results/<job id>.npz`."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from models.errors import NotFound
from models.ids import is_job_id
from models.storage.blobs import Blobs


class ResultStore:
    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def save(self, job_id: str, outputs: np.ndarray, labels: list[Any] | None) -> None:
        buffer = io.BytesIO()
        if labels is None:
            np.savez(buffer, outputs=outputs)
        else:  # str or int labels: loadable without pickle
            np.savez(buffer, outputs=outputs, labels=np.asarray(labels))
        self.blobs.put(self._key(job_id), buffer.getvalue())

    def load(self, job_id: str) -> tuple[np.ndarray, list[Any] | None]:
        try:
            body = self.blobs.get(self._key(job_id))
        except FileNotFoundError:
            raise NotFound(f"Job {job_id} has no stored result. Received: {job_id!r}") from None
        with np.load(io.BytesIO(body), allow_pickle=False) as stored:
            labels = stored["labels"].tolist() if "labels" in stored else None
            return stored["outputs"], labels

    def _key(self, job_id: str) -> str:
        if not is_job_id(job_id):
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return f"results/{job_id}.npz"
