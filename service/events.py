"""Server-Sent Events for one job: what `GET /v1/jobs/{id}/events` streams.

The stream follows the job record in Redis, so it needs nothing from the
worker and survives either side restarting. Events: `snapshot` (the whole
record, first), `epoch` (id = the epoch number; one per epoch, none skipped:
read off the job's history) and `state` (on each change; the stream ends
after a final one). A comment line every 15 s keeps proxies from closing an
idle stream; a stream ends after `max_seconds`, and EventSource clients
reconnect with `Last-Event-ID` for a fresh snapshot. Each open stream holds
a server thread, so a process keeps at most `server.max_event_streams`
(`StreamSlots`; one more is a 503 with `Retry-After`), freed when the server
closes the response.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flask import Flask

from models.errors import ServiceUnavailable
from models.jobs.store import FINAL_STATES, JobStore
from models.records import JobRecord
from models.training.search.ranking import with_ranks

POLL_SECONDS = 0.2
KEEP_ALIVE_SECONDS = 15.0
STATE_FIELDS = ("state", "error", "result", "finished_at", "attempts")


def job_events(jobs: JobStore, job_id: str, max_seconds: float = 300.0) -> Iterator[str]:
    job = jobs.get(job_id)  # NotFound before the stream starts: a plain 404
    return _stream(jobs, job, max_seconds)


def _stream(jobs: JobStore, job: JobRecord, max_seconds: float) -> Iterator[str]:
    job_id = job["id"]
    yield _event("snapshot", with_ranks(job))
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
        if latest["state"] is None:  # deleted, or expired
            return
        seen, quiet_since = latest, time.monotonic()
        # Only the epochs not sent yet: a long job's history is not read again.
        new = jobs.epoch_logs(job_id, epochs_seen)
        for number, logs in enumerate(new, start=epochs_seen + 1):
            yield _event("epoch", _epoch(number, logs, latest["progress"], epochs_seen + len(new)),
                         event_id=str(number))  # fmt: skip
        epochs_seen += len(new)
        if latest["state"] != state:
            state = latest["state"]
            current = jobs.fields(job_id, *STATE_FIELDS)
            yield _event("state", current)
            if state in FINAL_STATES:
                return


def _epochs(job: JobRecord) -> int:
    """The history's entries: a plain job's epochs (every one logs `loss`), a
    search's group epochs (every one logs `epoch`, its trials' logs keyed by trial)."""
    history = job.get("history") or {}
    return len(history.get("loss") or history.get("epoch") or [])


def _epoch(
    epoch: int, logs: dict[str, float], progress: Mapping[str, Any], last: int
) -> dict[str, Any]:
    total = progress.get("epochs") or epoch
    return {
        "epoch": epoch,
        "epochs": total,
        "fraction": round(epoch / total, 4),
        "eta_s": progress.get("eta_s") if epoch == last else None,
        "logs": logs,
    }


def _event(name: str, data: Mapping[str, Any], event_id: str | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


# A client refused a stream tries again after this long (EventSource: its own retry).
RETRY_AFTER_S = 5
SLOTS_EXTENSION = "fitserve.event_streams"


class StreamSlots:
    """The event streams this process holds open: at most `cap`. Thread-safe."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> Callable[[], None]:
        """A slot, and the function that frees it (once, however often it is
        called); ServiceUnavailable, with Retry-After, when all are taken."""
        with self._lock:
            if self.open >= self.cap:
                raise ServiceUnavailable(
                    f"This API process has its {self.cap} event streams open, as many as "
                    "FITSERVE_SERVER__MAX_EVENT_STREAMS allows; try again in "
                    f"{RETRY_AFTER_S} s, or poll GET /v1/jobs/<id>. Received: one more stream",
                    retry_after_s=RETRY_AFTER_S,
                )
            self.open += 1
        freed = False

        def free() -> None:
            nonlocal freed
            with self._lock:
                if not freed:
                    freed = True
                    self.open -= 1

        return free


def stream_slots(app: Flask) -> StreamSlots:
    """The app's slots: one set per process (the server forks before a request)."""
    slots = app.extensions.get(SLOTS_EXTENSION)
    if slots is None:
        cap = app.extensions["fitserve"].settings.server.max_event_streams
        slots = app.extensions.setdefault(SLOTS_EXTENSION, StreamSlots(cap))
    return slots
