"""Online workers: each worker writes a heartbeat record to Redis with a short
expiry, so a worker that dies drops out of the list by itself."""

from __future__ import annotations

import json
import threading
from typing import Any

import redis

HEARTBEAT_S = 5.0
EXPIRY_S = 3 * HEARTBEAT_S


class WorkerRegistry:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    def beat(self, info: dict[str, Any]) -> None:
        key = f"{self.prefix}:worker:{info['name']}"
        self.redis.set(key, json.dumps(info), ex=int(EXPIRY_S))

    def leave(self, name: str) -> None:
        self.redis.delete(f"{self.prefix}:worker:{name}")

    def online(self) -> list[dict[str, Any]]:
        keys = sorted(self.redis.scan_iter(f"{self.prefix}:worker:*"))
        records = self.redis.mget(keys) if keys else []
        return [json.loads(record) for record in records if record]

    def gpu_online(self) -> bool:
        return any(worker["gpus"] for worker in self.online())


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
