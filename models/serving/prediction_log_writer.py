"""The prediction log's writer: sampled predictions, recorded off the request path.

A sampled request (service.prediction_sampling decides) hands `offer` a small
record of plain values and copies of its first rows, nothing encoded. It goes
on a bounded deque (at most `max_queued`; when full the record is dropped and
counted, never waited for, so a writer can never fail or slow a request). A
writer thread per process (started with the first record, and again in a
forked child) encodes the records as JSON lines, groups them by model and
hour, and writes each group as one whole object
(models.storage.prediction_records) every `flush_s`, or at once when it
reaches MAX_OBJECT_BYTES. `flush` writes what is held: the reading route and
an exiting process call it.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import re
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from models.settings import PredictionLog as PredictionLogSettings
from models.storage.prediction_records import (
    MAX_OBJECT_BYTES,
    PredictionRecords,
    hour_folder,
    rfc3339,
)

log = logging.getLogger(__name__)

TICK_S = 0.1
# Input numbers kept per record: the first rows of a batch, at least one.
MAX_RECORD_VALUES = 4096

# What a request hands over: time.time(), model, version, protocol, role,
# latency_ms, rows, first inputs, first outputs, first labels.
Record = tuple[float, str, int, str, "str | None", "float | None", int, np.ndarray, np.ndarray,
               "list[Any] | None"]  # fmt: skip
# outcome ("written", "dropped", "failed") and how many records: for /metrics.
Counter = Callable[[str, int], None]

_open_logs: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


class _Group:
    """The encoded records of one model and hour, not yet written."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.first_ms = self.last_ms = -1

    def add(self, line: bytes, milliseconds: int) -> None:
        self.lines.append(line)
        self.size += len(line)
        self.first_ms = milliseconds if self.first_ms < 0 else min(self.first_ms, milliseconds)
        self.last_ms = max(self.last_ms, milliseconds)


class PredictionLog:
    def __init__(self, records: PredictionRecords, options: PredictionLogSettings,
                 count: Counter | None = None) -> None:  # fmt: skip
        # Read by the request thread before anything else: 0 means off.
        self.sample = options.sample
        self.records = records
        self.flush_s = options.flush_s
        self.max_queued = options.max_queued
        self.max_rows = options.max_rows
        self.count: Counter = count or (lambda outcome, records: None)
        # Record times (a test sets its own to write into other hours).
        self.clock: Callable[[], float] = time.time
        self.host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:64] or "host"
        self._reset()
        _open_logs.add(self)
        reference = weakref.ref(self)

        def after_fork() -> None:
            # Fresh queue, locks and no writer: a lock another thread held at
            # the fork would never be released in the child.
            if (prediction_log := reference()) is not None:
                prediction_log._reset()

        os.register_at_fork(after_in_child=after_fork)

    def _reset(self) -> None:
        self._queue: deque[Record] = deque()
        self._lock = threading.Lock()  # one drain or write at a time
        self._stop = threading.Event()
        self._pid: int | None = None
        self._groups: dict[tuple[str, str], _Group] = {}
        self._sequence = 0
        self._last_write = time.monotonic()
        # Counted here too (tests, logs): the metric is per outcome.
        self.dropped = 0

    def offer(self, model: str, version: int, x: np.ndarray, outputs: np.ndarray,
              labels: list[Any] | None, latency_ms: float | None, role: str | None,
              protocol: str) -> None:  # fmt: skip
        """Queue one sampled prediction; drops it (counted) when the queue is full."""
        if self._pid != os.getpid():
            self._start()
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            self.count("dropped", 1)
            return
        rows = len(x)
        per_row = x.size // rows if rows else 1
        keep = min(self.max_rows, max(1, MAX_RECORD_VALUES // max(per_row, 1)))
        # Copies: a view would keep a whole 100,000-row batch alive until written.
        self._queue.append((
            self.clock(), model, version, protocol, role, latency_ms, rows, x[:keep].copy(),
            outputs[:keep].copy(), None if labels is None else list(labels[:keep]),
        ))  # fmt: skip

    def flush(self) -> None:
        """Encode and write everything queued or held, now."""
        with self._lock:
            self._drain()
            self._write(everything=True)

    def close(self) -> None:
        """Stop this process's writer, having written what it holds."""
        self._stop.set()
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            threading.Thread(target=self._run, name="prediction-log", daemon=True).start()
        _flush_when_this_process_exits()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(TICK_S):
            try:
                with self._lock:
                    self._drain()
                    self._write(everything=time.monotonic() - self._last_write >= self.flush_s)
            except Exception:  # the writer must outlive any one failure
                log.exception("prediction log: writing failed")

    def _drain(self) -> None:
        """Encode the queued records into their groups (under `_lock`)."""
        for _ in range(len(self._queue)):
            record = self._queue.popleft()
            try:
                line, hour, milliseconds = _encode(record)
            except (TypeError, ValueError) as exc:  # a label orjson cannot write
                log.warning("prediction log: a record of model %s was not encoded: %s",
                            record[1], exc)  # fmt: skip
                self.count("failed", 1)
                continue
            key = (record[1], hour)
            group = self._groups.setdefault(key, _Group())
            group.add(line, milliseconds)
            if group.size >= MAX_OBJECT_BYTES:
                self._write_group(key, self._groups.pop(key))

    def _write(self, everything: bool) -> None:
        if not everything:
            return
        groups, self._groups = self._groups, {}
        for key, group in groups.items():
            self._write_group(key, group)
        self._last_write = time.monotonic()

    def _write_group(self, key: tuple[str, str], group: _Group) -> None:
        model, hour = key
        self._sequence += 1
        tail = f"{self.host}-{os.getpid()}-{self._sequence}"
        try:
            self.records.write(model, hour, group.first_ms, group.last_ms, tail,
                               b"".join(group.lines))  # fmt: skip
        except Exception as exc:  # the store is away: these records are lost, not retried
            log.warning("prediction log: %d records of model %s not written: %s",
                        len(group.lines), model, exc)  # fmt: skip
            self.count("failed", len(group.lines))
            return
        self.count("written", len(group.lines))


def _encode(record: Record) -> tuple[bytes, str, int]:
    """The record's JSON line, its hour folder, and its time in milliseconds."""
    moment, model, version, protocol, role, latency_ms, rows, x, outputs, labels = record
    milliseconds = int(moment * 1000)
    time_text, hour = _times(milliseconds)
    line = orjson.dumps(
        {
            "time": time_text,
            "model": model,
            "version": version,
            "protocol": protocol,
            "role": role,
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
            "rows": rows,
            "inputs": x,
            "outputs": outputs,
            "labels": labels,
        },
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
    )
    return line, hour, milliseconds


# The last second formatted: a writer's records come many to the second, and
# formatting a datetime costs more than the rest of a record's encoding.
_last_second: tuple[int, str, str] = (-1, "", "")


def _times(milliseconds: int) -> tuple[str, str]:
    """RFC 3339 time (models.storage.prediction_records.rfc3339) and hour folder."""
    global _last_second
    second, text, hour = _last_second
    if milliseconds // 1000 != second:
        text = rfc3339(milliseconds)[:-5]
        hour = hour_folder(milliseconds)
        _last_second = second, text, hour = milliseconds // 1000, text, hour
    return f"{text}.{milliseconds % 1000:03d}Z", hour


_exit_hook_pid: int | None = None


def _flush_when_this_process_exits() -> None:
    """atexit (registered below) runs when a plain process exits; a
    multiprocessing child (granian's API workers) leaves by os._exit instead,
    after running multiprocessing's finalizers, which it cleared when it
    started: so one is registered in each process that logs. Flushing twice
    writes nothing the second time."""
    global _exit_hook_pid
    if _exit_hook_pid != os.getpid():
        _exit_hook_pid = os.getpid()
        multiprocessing.util.Finalize(None, _flush_at_exit, exitpriority=10)


@atexit.register
def _flush_at_exit() -> None:
    """What a stopping process holds is written (a test, the CLI, a restart)."""
    for prediction_log in list(_open_logs):
        if prediction_log._pid == os.getpid():
            try:
                prediction_log.flush()
            except Exception as exc:  # at exit: say so, do not raise
                log.warning("prediction log: flushing at exit failed: %s", exc)
