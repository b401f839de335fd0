"""`/metrics` in Prometheus' text format, and a JSON access log line per request.

Counted in each API process: request latency by route, predicted samples by
model, requests refused for their key (by reason), loaded models. Under
`fitserve-api` the processes write these to files in PROMETHEUS_MULTIPROC_DIR
(set by service.main) and a scrape adds them up.
Read from Redis at scrape time, so every API process answers the same: jobs
by state, queue depth, online workers, and the samples the workers trained.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from models.jobs.store import STATES
from service.context import Services, services

log = logging.getLogger("fitserve.access")

REQUEST_SECONDS = Histogram(
    "fitserve_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip
PREDICTIONS = Counter("fitserve_predictions_total", "Samples predicted.", ["model"])
# outcome: written, dropped (the writer's queue was full) or failed (the store refused).
PREDICTION_LOG = Counter(
    "fitserve_prediction_log_records_total", "Sampled predictions for the prediction log.",
    ["outcome"],
)  # fmt: skip
# reason: missing, malformed, unknown_key (401s) or forbidden (a predict key's 403).
AUTH_FAILURES = Counter(
    "fitserve_auth_failures_total", "Requests refused for their API key.", ["reason"]
)
LOADED_MODELS = Gauge(
    "fitserve_loaded_models", "Model versions loaded in the API's caches.",
    multiprocess_mode="livesum",
)  # fmt: skip
MODEL_MEMORY_BYTES = Gauge(
    "fitserve_model_memory_bytes",
    "Bytes the loaded versions hold, counted against FITSERVE_MODEL_CACHE_BYTES per process.",
    multiprocess_mode="livesum",
)
MODEL_EVICTIONS = Gauge(
    "fitserve_model_memory_evictions",
    "Versions dropped to make room since each API process started.",
    multiprocess_mode="livesum",
)


# The labelled series in use, by their label values: `labels()` takes a lock
# and validates its arguments on every call, a sizeable part of a one-row
# request's own time. Bounded: past this many a series is looked up each time.
_MAX_CACHED_SERIES = 4096
_series: dict[tuple[Any, ...], Any] = {}


def _series_of(metric: Any, *values: str) -> Any:
    key = (id(metric), *values)
    series = _series.get(key)
    if series is None:
        series = metric.labels(*values)
        if len(_series) < _MAX_CACHED_SERIES:
            _series[key] = series
    return series


def count_predictions(model: str, samples: int) -> None:
    _series_of(PREDICTIONS, model).inc(samples)


def count_prediction_log(outcome: str, records: int) -> None:
    PREDICTION_LOG.labels(outcome=outcome).inc(records)


def count_auth_failure(reason: str) -> None:
    AUTH_FAILURES.labels(reason=reason).inc()


def observe_request(method: str, path: str, route: str, status: int, seconds: float) -> None:
    """A request answered: its duration in the histogram, and the access log line."""
    _series_of(REQUEST_SECONDS, method, route, str(status)).observe(seconds)
    if log.isEnabledFor(logging.INFO):
        # As log.info would, less its look up the stack for the caller's
        # file and line (the same for every access line).
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s",
                                  (method, path, status), None, extra={
            "method": method, "path": path, "route": route, "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }))  # fmt: skip


def install_metrics(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is None:
            return response
        seconds = time.perf_counter() - started
        this = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        # The route's pattern, not the path: one series per endpoint, not per model.
        route = this.url_rule.rule if this.url_rule else "unmatched"
        observe_request(this.method, this.path, route, response.status_code, seconds)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        parts = services()
        LOADED_MODELS.set(parts.predictor.loaded_count())
        MODEL_MEMORY_BYTES.set(parts.predictor.memory.held_bytes)
        MODEL_EVICTIONS.set(parts.predictor.memory.evictions)
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(registry)
        else:
            registry.register(_ThisProcess())
        registry.register(_StoreCollector(parts))
        return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")


class _ThisProcess:
    """The default registry's metrics (one process: the tests, the dev server)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class _StoreCollector:
    def __init__(self, parts: Services) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        parts = self.parts
        jobs = GaugeMetricFamily("fitserve_jobs", "Jobs by state.", labels=["state"])
        counts = parts.jobs.count_by_state()
        for state in STATES:
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
        depth = GaugeMetricFamily("fitserve_queue_depth", "Jobs waiting in each queue.",
                                  labels=["queue"])  # fmt: skip
        for queue in (parts.settings.queues.cpu, parts.settings.queues.gpu):
            depth.add_metric([queue], parts.redis.llen(queue))
        yield depth
        workers = GaugeMetricFamily("fitserve_workers", "Online workers.", labels=["device"])
        online: dict[str, int] = {}
        for worker in parts.workers.online():
            online[worker["device"]] = online.get(worker["device"], 0) + 1
        for device, count in sorted(online.items()):
            workers.add_metric([device], count)
        yield workers
        yield from _training(parts.jobs.training_totals())


def _training(totals: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    samples = CounterMetricFamily("fitserve_training_samples", "Samples trained (rows x epochs).",
                                  labels=["device"])  # fmt: skip
    seconds = CounterMetricFamily("fitserve_training_seconds", "Time spent fitting.",
                                  labels=["device"])  # fmt: skip
    rate = GaugeMetricFamily("fitserve_training_samples_per_second",
                             "Training throughput of the last job on each device.",
                             labels=["device"])  # fmt: skip
    for device, values in sorted(totals.items()):
        samples.add_metric([device], values.get("samples", 0.0))
        seconds.add_metric([device], values.get("seconds", 0.0))
        rate.add_metric([device], values.get("last_samples_per_s", 0.0))
    yield from (samples, seconds, rate)
