"""Checkpoints: one `.npz` per job at `checkpoints/<job id>.npz` in the store
(models.storage.blobs), so a job whose worker host died resumes on another.
Each save replaces the object whole (a put is atomic in a bucket, a rename in
a folder), so a crash while saving leaves the previous checkpoint whole.

What goes in a checkpoint, and when one is saved, is the training room's
(models.training.checkpoints); this module only stores and reads them.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from models.ids import is_job_id
from models.storage.blobs import Blobs


@dataclass
class Checkpoint:
    epoch: int  # epochs finished
    history: dict[str, list[float]]
    trainable: list[np.ndarray]
    non_trainable: list[np.ndarray]
    optimizer: list[np.ndarray]
    stop_training: bool = False
    early_stopping: dict[str, Any] = field(default_factory=dict)
    best_weights: list[np.ndarray] | None = None
    shuffle_key: np.ndarray | None = None
    # What a trainer needs beyond the above to go on (JSON): a group of trials'
    # stacks, who still runs, per-fold logs (models.training.fused.group_checkpoints).
    extra: dict[str, Any] = field(default_factory=dict)


class CheckpointStore:
    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def _key(self, job_id: str) -> str:
        if not is_job_id(job_id):
            raise ValueError(f"Job ids are 32 hex digits. Received: {job_id!r}")
        return f"checkpoints/{job_id}.npz"

    def save(self, job_id: str, checkpoint: Checkpoint) -> None:
        arrays: dict[str, np.ndarray] = {}
        for group in ("trainable", "non_trainable", "optimizer", "best_weights"):
            for index, value in enumerate(getattr(checkpoint, group) or []):
                arrays[f"{group}/{index}"] = value
        if checkpoint.shuffle_key is not None:
            arrays["shuffle_key"] = checkpoint.shuffle_key
        meta = {
            "epoch": checkpoint.epoch,
            "history": checkpoint.history,
            "stop_training": checkpoint.stop_training,
            "early_stopping": checkpoint.early_stopping,
            "has_best_weights": checkpoint.best_weights is not None,
            "extra": checkpoint.extra,
            "counts": {group: len(getattr(checkpoint, group) or [])
                       for group in ("trainable", "non_trainable", "optimizer", "best_weights")},
        }  # fmt: skip
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **cast(dict[str, Any], arrays))
        self.blobs.put(self._key(job_id), buffer.getvalue())

    def load(self, job_id: str) -> Checkpoint | None:
        try:
            body = self.blobs.get(self._key(job_id))
        except FileNotFoundError:
            return None
        with np.load(io.BytesIO(body), allow_pickle=False) as saved:
            meta = json.loads(saved["meta"].tobytes())

            def group(name: str) -> list[np.ndarray]:
                return [saved[f"{name}/{index}"] for index in range(meta["counts"][name])]

            return Checkpoint(
                epoch=meta["epoch"],
                history=meta["history"],
                trainable=group("trainable"),
                non_trainable=group("non_trainable"),
                optimizer=group("optimizer"),
                stop_training=meta["stop_training"],
                early_stopping=meta["early_stopping"],
                best_weights=group("best_weights") if meta["has_best_weights"] else None,
                shuffle_key=saved["shuffle_key"] if "shuffle_key" in saved.files else None,
                extra=meta.get("extra") or {},
            )

    def delete(self, job_id: str) -> None:
        self.blobs.delete(self._key(job_id))

    def job_ids(self) -> list[str]:
        names = (key.removeprefix("checkpoints/") for key in self.blobs.keys("checkpoints/"))
        return [name[:-4] for name in names if name.endswith(".npz") and is_job_id(name[:-4])]
