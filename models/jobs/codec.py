"""How a job's hash holds its record: one JSON value per field, the state too
('"queued"'), and its epochs as a list beside it, one JSON object each (the
record's `history` is assembled from them when read). Every part of the job
store reads and writes through these, so the stored format has one home."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast, get_args

from models.records import JobRecord, JobState

STATES: tuple[JobState, ...] = get_args(JobState)
FINAL_STATES: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")
# Fields the store keeps for itself: never part of a record read back.
PRIVATE_FIELDS = ("cancel_requested", "owner_token", "handed_back")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(fields: Mapping[str, Any]) -> dict[Any, str]:  # Any: what redis-py accepts as a key
    return {name: json.dumps(value) for name, value in fields.items()}


def decode_fields(names: Sequence[str], values: Sequence[bytes | str | None]) -> dict[str, Any]:
    """Fields read by name (HMGET): None for those the hash lacks."""
    return {name: None if value is None else json.loads(value)
            for name, value in zip(names, values, strict=True)}  # fmt: skip


def decode(raw: Mapping[Any, Any], epochs: Sequence[bytes | str]) -> JobRecord:
    """A whole record from its hash and its history list."""
    record = {text(name): json.loads(value) for name, value in raw.items()}
    for name in PRIVATE_FIELDS:
        record.pop(name, None)
    if epochs or "history" not in record:  # else a record from before the history list
        history: dict[str, list[float]] = {}
        for logs in epoch_logs(epochs):
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
        record["history"] = history
    return cast(JobRecord, record)


def epoch_logs(entries: Sequence[bytes | str]) -> list[dict[str, float]]:
    # One parse of a JSON array: a fraction of the time of one parse per epoch.
    return cast(list[dict[str, float]], json.loads(f"[{','.join(map(text, entries))}]"))


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
