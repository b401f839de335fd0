"""How the serving benchmarks print: the machine they ran on, and a figure
beside its target with a verdict, so that a run reads as a list of checks."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    import keras

    return (f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
            f"{platform.python_version()}, Keras {keras.__version__} "
            f"({keras.backend.backend()} in the service)")  # fmt: skip


def check(what: str, figure: str, target: str, met: bool) -> bool:
    """Print `what: figure (target ...) PASS|FAIL`; returns `met`."""
    print(f"  {what}: {figure} (target {target}) {'PASS' if met else 'FAIL'}", flush=True)
    return met
