"""Choosing the Keras backend: it must be set before `keras` is first imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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


def enable_compilation_cache(directory: Path) -> None:
    """Keep XLA's compiled programs on disk (JAX only).

    A fused training epoch takes 1-2 s to compile and is the same program for
    every job with the same network and batch shapes: with the cache, a
    retrained or repeated spec starts at once, in any worker process."""
    import keras

    if keras.backend.backend() != "jax":
        return
    import jax

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
