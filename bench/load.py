"""A small HTTP load generator (keep-alive connections, one per client thread),
and single requests timed on a connection of their own."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass
class LoadResult:
    latencies_ms: list[float]
    seconds: float
    errors: int

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds


def post_once(connection: http.client.HTTPConnection, path: str, body: bytes,
              headers: dict[str, str]) -> tuple[int, bytes]:  # fmt: skip
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def run_load(port: int, path: str, body: bytes, headers: dict[str, str], clients: int,
             seconds: float, max_requests: int) -> LoadResult:  # fmt: skip
    """`clients` threads post `body` back to back for `seconds` (or until
    `max_requests` in all), each on its own keep-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if len(latencies) + errors[0] >= max_requests:
                        return
                started = time.perf_counter()
                status, _ = post_once(connection, path, body, headers)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(latencies, time.perf_counter() - started, errors[0])


def timed_request(
    host: str, port: int, method: str, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None, timeout_s: float = 10.0,
) -> tuple[int, float]:  # fmt: skip
    """(status, seconds) of one request on a fresh connection; status 0 when
    it failed or took longer than `timeout_s`."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started
    finally:
        connection.close()


def in_turns(runs: Mapping[str, Callable[[float], LoadResult]], seconds: float,
             slices: int) -> dict[str, LoadResult]:  # fmt: skip
    """Each of `runs` (called with the seconds to run) for `seconds` in all,
    cut into `slices` taken in turns (A B, B A, ...), so the machine's noise
    hits them alike; each one's slices put together."""
    names = list(runs)
    parts: dict[str, list[LoadResult]] = {name: [] for name in names}
    for turn in range(slices):
        for name in names if turn % 2 == 0 else names[::-1]:
            parts[name].append(runs[name](seconds / slices))
    return {name: LoadResult([ms for part in results for ms in part.latencies_ms],
                             sum(part.seconds for part in results),
                             sum(part.errors for part in results))
            for name, results in parts.items()}  # fmt: skip
