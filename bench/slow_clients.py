"""Slow and idle clients: does the API still answer while they hold connections?

    .venv/bin/python -m bench.slow_clients            # starts `fitserve-api` here
    .venv/bin/python -m bench.slow_clients --url http://127.0.0.1:8000 --key KEY --model iris

Opens --slow connections that send headers a byte a second (slowloris),
--idle ones that send nothing, and --slow-bodies ones that send a body a byte
a second with a key; then times one-row `:predict` requests and `/healthz`
on fresh connections, and counts the hostile connections still open.
Without --url it publishes a small model and starts `fitserve-api` (its
default workers and threads) on a free port.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.load import timed_request
from bench.stores import KEY
from models.settings import Settings

ONE_ROW_FEATURES = 3


def raise_open_files_limit(wanted: int) -> int:
    """The soft limit on open files, raised towards `wanted` (at most the hard
    limit): the attack needs a socket per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


class Hostile:
    """One hostile connection: the bytes it sends, one at a time after `sent`."""

    def __init__(self, connection: socket.socket, stream: bytes, sent: int) -> None:
        self.connection = connection
        self.stream = stream
        self.sent = sent
        if sent:
            connection.sendall(stream[:sent])

    def trickle(self) -> None:
        if self.sent < len(self.stream):
            try:
                self.sent += self.connection.send(self.stream[self.sent : self.sent + 1])
            except OSError:  # the server closed it, or stopped reading it
                self.sent = len(self.stream)

    def still_open(self) -> bool:
        """Neither closed nor answered by the server."""
        try:
            self.connection.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: still open, still waiting on us
        except OSError:
            return False  # reset
        return False  # closed (b""), or answered (a 400 or 408): the server is done with it


@dataclass
class Attack:
    """Hostile connections to host:port, kept open until `close()`. A feeder
    thread sends each slow one a byte per `byte_interval_s`."""

    host: str
    port: int
    path: str = "/v1/models/any:predict"
    key: str = ""  # for slow bodies: without a key the API refuses before reading one
    byte_interval_s: float = 1.0
    kinds: dict[str, list[Hostile]] = field(default_factory=dict)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def open(self, slow: int, idle: int, slow_bodies: int = 0) -> None:
        """`slow`: a request line and headers that never end, half of them
        from the first byte, half from mid-headers. `idle`: nothing sent.
        `slow_bodies`: whole headers, then a body a byte at a time."""
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n".encode()
        endless = head + b"".join(b"X-Slow-%d: a\r\n" % index for index in range(100_000))
        key_header = f"Authorization: Bearer {self.key}\r\n".encode()
        body_head = head + key_header + b"Content-Length: 1000000\r\n\r\n{"
        plans = {
            "slow": (slow, endless),
            "idle": (idle, b""),
            "slow bodies": (slow_bodies, body_head + b" " * 999_999),
        }
        for kind, (count, stream) in plans.items():
            self.kinds[kind] = []
            for index in range(count):
                try:
                    connection = socket.create_connection((self.host, self.port), timeout=10)
                except OSError:
                    self.refused += 1
                    continue
                connection.setblocking(False)
                sent = {"slow": len(head) if index % 2 else 0, "idle": 0}.get(kind, len(body_head))
                self.kinds[kind].append(Hostile(connection, stream, sent))
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self) -> None:
        while not self._stop.wait(self.byte_interval_s):
            for hostiles in self.kinds.values():
                for hostile in hostiles:
                    hostile.trickle()

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per kind: (connected, still open)."""
        return {kind: (len(hostiles), sum(hostile.still_open() for hostile in hostiles))
                for kind, hostiles in self.kinds.items() if hostiles}  # fmt: skip

    def close(self) -> None:
        self._stop.set()
        for hostiles in self.kinds.values():
            for hostile in hostiles:
                hostile.connection.close()


@contextmanager
def attacking(
    host: str, port: int, path: str, counts: tuple[int, int, int], key: str = ""
) -> Iterator[Attack]:
    """`counts`: (slow, idle, slow bodies) connections, open inside the block."""
    raise_open_files_limit(sum(counts) + 1024)
    attack = Attack(host, port, path, key)
    try:
        attack.open(*counts)
        yield attack
    finally:
        attack.close()


def one_row_body(features: int = ONE_ROW_FEATURES) -> bytes:
    return json.dumps({"instances": [[0.1] * features]}).encode()


def publish_small_model(settings: Settings, name: str) -> None:
    """A dense model on ONE_ROW_FEATURES inputs, trained and published in this
    process the way a worker does."""
    import numpy as np

    from bench.seed_model import publish_in_process

    x = np.random.default_rng(0).normal(size=(64, ONE_ROW_FEATURES)).round(3)
    spec = {"input_shape": [ONE_ROW_FEATURES],
            "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                       {"type": "dense", "units": 1}],
            "compile": {"loss": "mse", "optimizer": "adam"},
            "fit": {"epochs": 1, "batch_size": 16}}  # fmt: skip
    publish_in_process(settings, name, spec, x, x.sum(axis=1))


def report(url: str, options: argparse.Namespace) -> bool:
    """Probe `url` under attack and print what happened: True when every probe
    answered 200 within 1 s."""
    probes = options.probes
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    predict = f"/v1/models/{options.model}:predict"
    headers = {"Authorization": f"Bearer {options.key}", "Content-Type": "application/json"}
    body = one_row_body(options.features)
    # Before the attack, and warming up: the first request may wait for the model to load.
    status, _ = timed_request(host, port, "POST", predict, body, headers, timeout_s=120)
    if status != 200:
        raise SystemExit(f"POST {predict} answers {status} before any attack: check --model/--key")
    counts = (options.slow, options.idle, options.slow_bodies)
    print(f"{url}: {counts[0]} slow, {counts[1]} idle, {counts[2]} slow-body connections, "
          f"then {probes} probes of each")  # fmt: skip
    with attacking(host, port, predict, counts, options.key) as attack:
        time.sleep(2.0)  # the slow ones have started trickling; the server took them all
        results: dict[str, list[tuple[int, float]]] = {"predict": [], "healthz": []}
        for _ in range(probes):
            results["predict"].append(timed_request(host, port, "POST", predict, body, headers))
            results["healthz"].append(timed_request(host, port, "GET", "/healthz"))
            time.sleep(0.2)
        held = attack.counts()
    print(
        f"connected (still open after the probes), {attack.refused} refused: "
        + ", ".join(f"{kind} {connected} ({still})" for kind, (connected, still) in held.items())
    )
    within = True
    for name, answers in results.items():
        seconds = [elapsed for _, elapsed in answers]
        failed = sum(status != 200 for status, _ in answers)
        print(f"  {name:8} p50 {statistics.median(seconds) * 1000:8.1f} ms   max "
              f"{max(seconds) * 1000:8.1f} ms   not 200: {failed}/{len(answers)}")  # fmt: skip
        within = within and not failed and max(seconds) < 1.0
    print("every probe answered 200 within 1 s" if within else "SOME PROBE FAILED OR TOOK >= 1 s")
    return within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running API (default: start fitserve-api here)")
    parser.add_argument("--key", default=KEY, help="an API key of --url")
    parser.add_argument("--model", default="slow-clients", help="a published model of --url")
    parser.add_argument("--features", type=int, default=ONE_ROW_FEATURES,
                        help="how many features --model takes")  # fmt: skip
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--slow-bodies", type=int, default=0,
                        help="connections that send whole headers (with --key), then a body "
                        "a byte a second")  # fmt: skip
    parser.add_argument("--probes", type=int, default=10)
    options = parser.parse_args()
    ok = report(options.url, options) if options.url else _with_local_api(options)
    raise SystemExit(0 if ok else 1)


def _with_local_api(options: argparse.Namespace) -> bool:
    from bench.stores import bench_settings
    from service.local_processes import (
        Service,
        api_answers,
        forget_redis_state,
        free_port,
        settings_environment,
    )

    folder = Path(tempfile.mkdtemp(prefix="fitserve-slow-clients-"))
    settings = bench_settings(folder / "var")
    try:
        publish_small_model(settings, options.model)
        port = free_port()
        environment = settings_environment(settings, port) | {
            "FITSERVE_SERVER__WORKERS": str(settings.server.workers)}  # fmt: skip
        api = Service.entry_point(["fitserve-api"], environment, folder / "api.log")
        try:
            url = f"http://127.0.0.1:{port}"
            api.wait_until(api_answers(url))
            options.key, options.features = KEY, ONE_ROW_FEATURES
            return report(url, options)
        finally:
            api.stop()
    finally:
        forget_redis_state(settings)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
