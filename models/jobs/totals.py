"""Per-device training totals: samples and seconds of every finished fit,
a hash per device, and the set of devices that have one (so reading them
needs no scan of the keyspace). /metrics exports them."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from models.jobs.codec import text
from models.jobs.keys import JobKeys


@dataclass(frozen=True)
class TrainingTotals:
    client: redis.Redis
    keys: JobKeys

    def record_training(self, device: str, samples: int, seconds: float) -> None:
        """Add a finished fit to the per-device totals that /metrics exports."""
        key = self.keys.training(device)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hincrbyfloat(key, "samples", samples)
            pipe.hincrbyfloat(key, "seconds", seconds)
            pipe.hset(key, "last_samples_per_s", samples / seconds if seconds > 0 else 0.0)
            pipe.sadd(self.keys.devices, device)
            pipe.execute()

    def training_totals(self) -> dict[str, dict[str, float]]:
        devices = sorted(text(device) for device in self.client.smembers(self.keys.devices))
        with self.client.pipeline(transaction=False) as pipe:
            for device in devices:
                pipe.hgetall(self.keys.training(device))
            found = pipe.execute()
        return {device: {text(name): float(value) for name, value in totals.items()}
                for device, totals in zip(devices, found, strict=True) if totals}  # fmt: skip
