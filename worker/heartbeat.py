"""The worker's heartbeat: its record in the registry (models.jobs.workers),
refreshed in the background and on every change of job."""

from __future__ import annotations

import threading
from typing import Any

import redis

from models.jobs.workers import HEARTBEAT_S, WorkerRegistry


class Heartbeat:
    """The worker's record, refreshed in the background and on every change."""

    def __init__(self, registry: WorkerRegistry, info: dict[str, Any]) -> None:
        self.registry = registry
        self.info = {**info, "current_job": None, "jobs_done": 0}
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self) -> None:
        self._beat()
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self.registry.leave(self.info["name"])

    def job_started(self, job_id: str) -> None:
        with self._lock:
            self.info["current_job"] = job_id
        self._beat()

    def job_finished(self) -> None:
        with self._lock:
            self.info["current_job"] = None
            self.info["jobs_done"] += 1
        self._beat()

    def _run(self) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            self._beat()

    def _beat(self) -> None:
        with self._lock:
            info = dict(self.info)
        try:
            self.registry.beat(info)
        except redis.RedisError:
            pass  # Redis away for a moment: the next beat tries again
