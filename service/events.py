"""Server-Sent Events for one job: what `GET /v1/jobs/{id}/events` streams.

The stream follows the job record in Redis (its state and progress read a
few times a second, the whole record only when one of them has changed), so
it needs nothing from the worker and survives either side restarting. Events:

- `snapshot`: the whole job record, first, so a late subscriber has the curves so far;
- `epoch` (id = the epoch number): `{epoch, epochs, fraction, eta_s, logs}`, one per
  epoch, none skipped: they are read off the job's history;
- `state`: `{state, error, result, finished_at}` on each change of state; the
  stream ends after a final one.

A comment line every 15 s keeps proxies from closing an idle stream, and a
stream ends after `max_seconds`; EventSource clients reconnect by themselves,
sending `Last-Event-ID`, and get a fresh snapshot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from models.jobs.store import FINAL_STATES, JobStore
from models.records import JobRecord

POLL_SECONDS = 0.2
KEEP_ALIVE_SECONDS = 15.0
STATE_FIELDS = ("state", "error", "result", "finished_at", "attempts")


def job_events(jobs: JobStore, job_id: str, max_seconds: float = 300.0) -> Iterator[str]:
    job = jobs.get(job_id)  # NotFound before the stream starts: a plain 404
    return _stream(jobs, job, max_seconds)


def _stream(jobs: JobStore, job: JobRecord, max_seconds: float) -> Iterator[str]:
    job_id = job["id"]
    yield _event("snapshot", job)
    state, epochs_seen = job["state"], _epochs(job)
    if state in FINAL_STATES:
        return
    deadline = time.monotonic() + max_seconds
    quiet_since = time.monotonic()
    seen = {"state": state, "progress": job["progress"]}
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        latest = jobs.fields(job_id, "state", "progress")
        if latest == seen:
            if time.monotonic() - quiet_since > KEEP_ALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            continue
        seen, quiet_since = latest, time.monotonic()
        current = jobs.get(job_id)
        for epoch in range(epochs_seen + 1, _epochs(current) + 1):
            yield _event("epoch", _epoch(current, epoch), event_id=str(epoch))
        epochs_seen = max(epochs_seen, _epochs(current))
        if current["state"] != state:
            state = current["state"]
            yield _event("state", {name: current.get(name) for name in STATE_FIELDS})
            if state in FINAL_STATES:
                return


def _epochs(job: JobRecord) -> int:
    return len((job.get("history") or {}).get("loss", []))


def _epoch(job: JobRecord, epoch: int) -> dict[str, Any]:
    progress = job["progress"]
    logs = {name: values[epoch - 1] for name, values in job["history"].items()
            if len(values) >= epoch}  # fmt: skip
    total = progress.get("epochs") or epoch
    latest = epoch == _epochs(job)
    return {
        "epoch": epoch,
        "epochs": total,
        "fraction": round(epoch / total, 4),
        "eta_s": progress.get("eta_s") if latest else None,
        "logs": logs,
    }


def _event(name: str, data: Mapping[str, Any], event_id: str | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"
