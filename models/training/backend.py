"""Choosing the Keras backend: it must be set before `keras` is first imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# XLA's default optimization level for generated machine code (DebugOptions).
FULL_OPTIMIZATION = {"xla_backend_optimization_level": 3}


def configure_backend(backend: str, quick_eager_compiles: bool = False) -> None:
    """Select the Keras backend for this process (before Keras is imported).

    `quick_eager_compiles` (the worker): on JAX, every eager Keras op is an XLA
    program compiled for its shapes, and a job's model set-up runs a dozen
    once (each initializer, each zeros), most of their cost in LLVM's
    optimizer. Those ops run once, so their code is compiled unoptimized; the
    fused epoch, which runs thousands of times, asks for FULL_OPTIMIZATION
    itself (models.training.fused.trainer). What each costs: bench/RESULTS.md.
    """
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
    flags = os.environ.get("XLA_FLAGS", "")
    if quick_eager_compiles and backend == "jax" and "optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()


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
    # Programs depend on shapes only (a few hundred KB each), but every new
    # network or dataset size adds one: least recently used go past 1 GiB.
    jax.config.update("jax_compilation_cache_max_size", 1 << 30)
