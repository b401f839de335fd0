"""A redis-server of a test's own, on a free port: killed, stopped (SIGSTOP, a
Redis that hangs without closing its connections), resumed, reconfigured, and
never the shared one. With the append-only file Redis needs to keep what it
acknowledged across a crash."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import redis

from service.local_processes import Service, free_port

HAS_REDIS_SERVER = shutil.which("redis-server") is not None


class OwnRedis:
    def __init__(self, folder: Path, *options: str) -> None:
        self.folder = folder
        self.options = options  # more redis-server options, e.g. ("--save", "3600 1")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: Service | None = None
        self.paused = False

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
                   "--save", "", *self.options]  # fmt: skip
        self.server = Service(command, {}, self.folder / f"redis-{self.port}.log")
        self.server.wait_until(self._answers, timeout_s=30)

    def kill(self) -> None:
        assert self.server is not None
        self.server.process.kill()
        self.server.process.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as when Redis
        is swapped out, stalls, or sits behind a network that drops packets."""
        assert self.server is not None
        os.kill(self.server.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.server is not None
        os.kill(self.server.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.server is None:
            return
        if self.paused:
            self.resume()
        self.server.stop(timeout_s=10)

    def client(self) -> redis.Redis:
        """A client that never waits long: for the test's own look at the server."""
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False
