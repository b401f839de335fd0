"""The request side of the prediction log: sample, and hand over a record.

`log_prediction` is called once per predict request (v1 `:predict`, v2
`infer`), after the answer is built. With the log off (sample 0, the
default) it costs one comparison; when a request is sampled it hands the
writer (models.serving.prediction_log_writer) plain values and row copies, and
encodes nothing: the writer's thread does that.
"""

from __future__ import annotations

import logging
import random
import time

import numpy as np
from flask import g

from models.serving.loaded_model import Prediction
from service.context import Services

log = logging.getLogger(__name__)


def log_prediction(parts: Services, name: str, x: np.ndarray, prediction: Prediction,
                   protocol: str) -> None:  # fmt: skip
    """In a Flask request: its start (service.metrics' timer) and key role from `g`."""
    if _sampled(parts):
        _offer(parts, name, x, prediction, protocol, g.get("request_started"), g.get("key_role"))


def log_prediction_outside_flask(parts: Services, name: str, x: np.ndarray,
                                 prediction: Prediction, protocol: str, started: float,
                                 role: str) -> None:  # fmt: skip
    """The same, for service.fast_predict, which answers without a Flask request."""
    if _sampled(parts):
        _offer(parts, name, x, prediction, protocol, started, role)


def _sampled(parts: Services) -> bool:
    sample = parts.prediction_log.sample
    return bool(sample) and (sample >= 1.0 or random.random() < sample)


def _offer(parts: Services, name: str, x: np.ndarray, prediction: Prediction, protocol: str,
           started: float | None, role: str | None) -> None:  # fmt: skip
    try:
        # From the start of the request to its answer built.
        latency_ms = None if started is None else (time.perf_counter() - started) * 1000
        parts.prediction_log.offer(name, prediction.version, x, prediction.outputs,
                                   prediction.labels, latency_ms, role, protocol)  # fmt: skip
    except Exception:  # the log must never fail the prediction it records
        log.exception("prediction log: a record of model %s was not taken", name)
