"""`fitserve-api` started for a benchmark (its default worker count, a port of
its own for HTTP and for gRPC), and what benchmarks read from it: when
`/readyz` first answers 200, its worker processes (granian's children), their
resident memory, and when they have gone quiet.

Shared by bench.serve and bench.many_models (and its parts), so that no
benchmark imports another for it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from models.settings import Settings
from service.local_processes import Service, free_port, settings_environment

# A worker process counts as quiet while it uses less than this share of a
# core (its idle threads wake now and then, never for long).
QUIET_SHARE = 0.05
QUIET_WINDOW_S = 1.0
QUIET_WINDOWS = 3
TICKS = os.sysconf("SC_CLK_TCK")


def answers(url: str) -> bool:
    """True when a GET of `url` answers 200 (the probes need no key)."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:  # refused, or accepted while still booting
        return False


@dataclass
class Api:
    service: Service
    port: int
    grpc_port: int
    started_at: float  # time.perf_counter() when the process was started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready_after_s(self, timeout_s: float = 300) -> float:
        """Seconds from the start until `/readyz` first answered 200."""
        self.service.wait_until(lambda: answers(f"{self.url}/readyz"), timeout_s=timeout_s)
        return time.perf_counter() - self.started_at

    def worker_pids(self) -> list[int]:
        """granian's worker processes: the children of the server process."""
        pids = sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
        parent = str(self.service.process.pid)
        return [pid for pid in pids if _stat_fields(pid)[1:2] == [parent]]

    def rss_mib(self) -> dict[int, float]:
        """VmRSS of each worker process, in MiB."""
        sizes = {}
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[pid] = int(line.split()[1]) / 1024
        return sizes

    def wait_until_quiet(self, timeout_s: float = 300) -> float:
        """Seconds until the worker processes together used under QUIET_SHARE
        of a core in each of QUIET_WINDOWS windows in a row: loads started in
        the background (warm-up, readiness questions) are done, and what is
        measured next does not share the cores with them. Several windows: on
        a crowded host a busy process may get little CPU for a second."""
        started = time.perf_counter()
        pids = self.worker_pids()
        before, quiet = _cpu_s(pids), 0
        while quiet < QUIET_WINDOWS and time.perf_counter() - started < timeout_s:
            time.sleep(QUIET_WINDOW_S)
            now = _cpu_s(pids)
            quiet = quiet + 1 if now - before < QUIET_SHARE * QUIET_WINDOW_S else 0
            before = now
        return time.perf_counter() - started

    def stop(self) -> None:
        self.service.stop()


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command's closing parenthesis (state, ppid,
    ...); [] for a process gone meanwhile."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user and system) the processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICKS


def start_api(
    settings: Settings, folder: Path, name: str, extra: dict[str, str] | None = None
) -> Api:
    """`fitserve-api` on `settings`, its default worker count, its log in
    `folder/<name>.log`; `extra` environment variables on top."""
    port, grpc_port = free_port(), free_port()
    # A gRPC port of its own: two servers must never both take the default 8001.
    environment = settings_environment(settings, port, grpc_port) | {
        "FITSERVE_SERVER__WORKERS": str(settings.server.workers),
    }
    environment |= extra or {}
    service = Service.entry_point(["fitserve-api"], environment, folder / f"{name}.log")
    return Api(service, port, grpc_port, time.perf_counter())
