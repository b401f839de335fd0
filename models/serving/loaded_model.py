"""A version loaded for serving (`LoadedModel`) and what it answers (`Prediction`).

Apart from models.serving.model_loading, which makes them, and the predictor,
which caches them, so that the warm-up (models.serving.warm_up), which the
predictor calls, can take one without importing the predictor back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.training.class_labels import LabelEncoding

CHUNK_ROWS = 8192


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    metadata: dict[str, Any]  # the manifest's, less what serving never reads
    encoding: LabelEncoding
    forward: Callable[[np.ndarray], np.ndarray]
    engine: str  # "numpy" or "keras": which forward pass serves it
    # What it holds in memory to serve (models.serving.footprint): what the
    # model memory (models.serving.model_memory) counts against its budget.
    nbytes: int
    # The layers' regularization penalties on the stored weights, which Keras
    # adds to the loss `evaluate` reports (models.serving.evaluation).
    regularization: float = 0.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= CHUNK_ROWS:
            return self.forward(x)
        # Bounded chunks: a 100,000-row batch never builds one huge activation.
        out = np.empty((len(x), self.metadata["outputs"]), dtype=np.float32)
        for start in range(0, len(x), CHUNK_ROWS):
            out[start : start + CHUNK_ROWS] = self.forward(x[start : start + CHUNK_ROWS])
        return out

    def run(self, x: np.ndarray) -> Prediction:
        """Outputs and decoded labels for `x`."""
        outputs = self.predict(x)
        return Prediction(self.version, outputs, self.encoding.decode(outputs))


@dataclass(frozen=True)
class Prediction:
    version: int
    outputs: np.ndarray
    labels: list[Any] | None
