"""Warm before ready (TF Serving's and Triton's model warm-up).

A version is warmed before the predictor puts it in its cache, so before it
takes any traffic: `warm_up` sends a one-row and a several-row batch through
the path a `:predict` takes after its route (the JSON body read by
models.serving.samples, the forward pass the version serves with, the label
decoding, the JSON answer). `WarmUp` is what an API process reports while it
loads and warms the latest version of each model at start: `/readyz` and the
Open Inference Protocol's ready routes answer "not ready" until every model
has either loaded or failed (a failed one is a warning, never a wait).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
import orjson

from models.serving import samples

if TYPE_CHECKING:
    from models.serving.loaded_model import LoadedModel

# Rows of the warm-up batches: one (most requests) and a few (the numpy pass
# and the JSON reader take other branches for several rows).
WARM_ROWS = (1, 16)
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def warm_up(loaded: LoadedModel) -> None:
    """Run the serving path once per WARM_ROWS on made-up samples; raises
    what serving would (a version that cannot answer is not put in service)."""
    input_shape = list(loaded.metadata["input_shape"])
    rng = np.random.default_rng(0)
    for rows in WARM_ROWS:
        x = rng.normal(size=(rows, *input_shape)).astype(np.float32)
        body = orjson.dumps({"instances": x}, option=JSON_OPTIONS)
        parsed, _ = samples.from_json_body(body, input_shape, None, orjson.loads)
        prediction = loaded.run(parsed)
        answer: dict[str, object] = {"predictions": prediction.outputs}
        if prediction.labels is not None:
            answer["labels"] = prediction.labels
        orjson.dumps(answer, option=JSON_OPTIONS)


class WarmUp:
    """Progress of an API process's start-up warm-up. Thread-safe.

    Done from the start when the process does not warm its models
    (`preload_models` off): readiness then waits for nothing here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._finished.set()
        self._total: int | None = None  # None: the models are not listed yet
        self._loaded = 0
        self._failed: list[tuple[str, str]] = []
        self._notes: list[tuple[str, str]] = []

    def begin(self) -> None:
        """The warm-up starts: not ready until `finish`."""
        self._finished.clear()

    def expect(self, total: int) -> None:
        with self._lock:
            self._total = total

    def loaded(self) -> None:
        with self._lock:
            self._loaded += 1

    def failed(self, name: str, reason: str) -> None:
        with self._lock:
            self._failed.append((name, reason))

    def note(self, summary: str, detail: str = "") -> None:
        """Something to report for good after the warm-up, with `detail`
        only for a caller with a key."""
        with self._lock:
            self._notes.append((summary, detail))

    def finish(self) -> None:
        self._finished.set()

    def wait(self, timeout_s: float) -> bool:
        """Until the warm-up is done (tests, benchmarks); False on the timeout."""
        return self._finished.wait(timeout_s)

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def waiting(self) -> str | None:
        """Why the process is not ready yet; None once the warm-up is done."""
        if self._finished.is_set():
            return None
        with self._lock:
            if self._total is None:
                return "warming up: listing the models"
            done = self._loaded + len(self._failed)
            return f"warming up: {done} of {self._total} models loaded"

    def warnings(self, detailed: bool) -> list[str]:
        """Models that failed to load during the warm-up (with the failure's
        text only when `detailed`: it may hold paths and host names)."""
        with self._lock:
            failed, notes = list(self._failed), list(self._notes)
        return [
            f"model {name!r} failed to load at start and is not served until a version "
            "loads" + (f": {reason}" if detailed else "")
            for name, reason in failed
        ] + [summary + (f": {detail}" if detailed and detail else "") for summary, detail in notes]
