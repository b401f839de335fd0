"""Online workers: each worker writes a heartbeat record to Redis with a short
expiry, so a worker that dies drops out of the list by itself. The API lists
them, and how many serve each queue (and routes `auto` jobs by them);
worker.heartbeat writes them."""

from __future__ import annotations

import json
from collections.abc import Iterable
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

    @staticmethod
    def serving(queues: Iterable[str], online: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """How many of the `online` workers consume each of `queues` (0: none,
        and a job sent there waits)."""
        return {queue: {"workers": sum(worker.get("queue") == queue for worker in online)}
                for queue in queues}  # fmt: skip
