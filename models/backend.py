"""Choosing the Keras backend: it must be set before `keras` is first imported."""

from __future__ import annotations

import os
import sys


def configure_backend(backend: str) -> None:
    if "keras" in sys.modules:
        # Already imported (tests, or a second app in one process): it must agree.
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"Keras was already imported with backend {keras.backend.backend()!r}; "
                f"expected {backend!r}. Set KERAS_BACKEND before starting."
            )
        return
    os.environ["KERAS_BACKEND"] = backend
    # JAX would otherwise take 75% of a GPU's memory at start.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
