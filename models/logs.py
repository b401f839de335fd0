"""Structured logs: one JSON object per line, with the job id when there is one.

Every process (API, worker) calls `configure_logging` once at start. A job's
id is put in a context variable while its worker runs it, so every line
logged meanwhile, by us or by a library, carries `job_id`. Fields passed
with `extra=` (an access log's method, route, status, duration) become keys
of the object. `FITSERVE_LOG_FORMAT=text` gives plain lines for a terminal.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

current_job: ContextVar[str | None] = ContextVar("current_job", default=None)

# What every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "job_id"}


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job.get()
        return True


class JsonFormatter(logging.Formatter):
    """Written by orjson: the API writes a line per request, and the standard
    library's json took several times as long. What orjson does not take (an
    int beyond 64 bits) goes through the json module as before."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key[0] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:
            return json.dumps(entry, default=str)


_second: tuple[int, str] = (-1, "")  # a second and its text, made once a second


def _iso_time(created: float) -> str:
    """`created` as datetime.fromtimestamp(created, UTC).isoformat(timespec=
    "milliseconds") writes it (rounded to the microsecond half to even, as
    it rounds, then cut to the millisecond), at a fifth of its cost."""
    global _second
    seconds = math.floor(created)
    micros = round((created - seconds) * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    second, text = _second
    if second != seconds:
        text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")[:-6]
        _second = (seconds, text)
    return f"{text}.{micros // 1000:03d}+00:00"


def configure_logging(log_format: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(job_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = current_job.set(job_id)
    try:
        yield
    finally:
        current_job.reset(token)
