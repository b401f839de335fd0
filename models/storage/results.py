"""Batch prediction results: one NPZ per prediction job, written atomically."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import NotFound
from models.ids import is_job_id


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, job_id: str, outputs: np.ndarray, labels: list[Any] | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        if labels is None:
            np.savez(buffer, outputs=outputs)
        else:  # str or int labels: loadable without pickle
            np.savez(buffer, outputs=outputs, labels=np.asarray(labels))
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        staging.write_bytes(buffer.getvalue())
        os.replace(staging, self._path(job_id))

    def load(self, job_id: str) -> tuple[np.ndarray, list[Any] | None]:
        path = self._path(job_id)
        if not path.is_file():
            raise NotFound(f"Job {job_id} has no stored result. Received: {job_id!r}")
        with np.load(path, allow_pickle=False) as stored:
            labels = stored["labels"].tolist() if "labels" in stored else None
            return stored["outputs"], labels

    def _path(self, job_id: str) -> Path:
        if not is_job_id(job_id):
            raise NotFound(f"No job with id {job_id!r}. Received: {job_id!r}")
        return self.root / f"{job_id}.npz"
