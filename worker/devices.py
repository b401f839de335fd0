"""Which device this worker trains on. Asked of the backend already loaded."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def detect_devices(backend: str) -> list[str]:
    """GPU names this process can use, e.g. ['gpu:0']; empty on a CPU host."""
    if backend == "jax":
        import jax

        return [f"gpu:{index}" for index, _ in enumerate(_jax_gpus(jax))]
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            # Otherwise TensorFlow holds the whole GPU for the life of the process.
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError as exc:  # the GPUs were initialized already
                log.warning("GPU memory will not grow on demand: %s", exc)
        return [f"gpu:{index}" for index in range(len(gpus))]
    if backend == "torch":
        import torch

        return [f"gpu:{index}" for index in range(torch.cuda.device_count())]
    return []


def _jax_gpus(jax: object) -> list[object]:
    try:
        return list(jax.devices("gpu"))  # type: ignore[attr-defined]
    except RuntimeError:  # no GPU backend in this jaxlib
        return []
