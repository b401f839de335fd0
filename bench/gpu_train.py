"""The worker's training path on a GPU and on the same host's CPUs.

For the seed MNIST MLP (784-512-10) and a wide MLP (784-4096-4096-10), on
synthetic rows, batch 128: samples/s of `models.training.train` (fused, JAX)
on each device, and of plain Keras `fit` with `steps_per_execution=32` on the
GPU as the in-run peer. Each measurement runs in its own process, so the CPU
run cannot touch the GPU (JAX_PLATFORMS=cpu). Run by bench/gpu.sh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {"seed MNIST MLP": [512], "wide MLP": [4096, 4096]}


def spec_for(hidden: list[int], epochs: int) -> dict:
    return {
        "input_shape": [784],
        "layers": [*({"type": "dense", "units": units, "activation": "relu"} for units in hidden),
                   {"type": "dense", "units": 10, "activation": "softmax"}],
        "compile": {"loss": "categorical_crossentropy", "optimizer": "rmsprop",
                    "metrics": ["accuracy"]},
        "fit": {"epochs": epochs, "batch_size": 128},
        "seed": 1,
    }  # fmt: skip


def measure(network: str, mode: str, rows: int, epochs: int) -> dict:
    """In this process: train and time; returns samples/s overall and after epoch 1."""
    sys.path[:0] = [str(ROOT)]
    import jax
    import keras
    import numpy as np

    from models.builder import build_model
    from models.datasets import Dataset
    from models.spec import ModelSpec
    from models.training import train

    generator = np.random.default_rng(0)
    x = generator.random((rows, 784), dtype=np.float32)
    y = generator.integers(0, 10, rows)
    spec = ModelSpec.model_validate(spec_for(NETWORKS[network], epochs))
    stamps: list[float] = []

    class Clock:
        def on_epoch_end(self, epoch: int, logs: dict) -> None:
            stamps.append(time.perf_counter())

        def should_stop(self) -> bool:
            return False

    if mode == "plain fit, steps_per_execution=32":
        keras.utils.set_random_seed(1)
        model = build_model(spec)
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy",
                      metrics=["accuracy"], steps_per_execution=32)  # fmt: skip
        callback = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda *_: Clock().on_epoch_end(0, {})
        )
        started = time.perf_counter()
        model.fit(x, np.eye(10, dtype="float32")[y], epochs=epochs, batch_size=128, verbose=0,
                  callbacks=[callback])  # fmt: skip
    else:
        started = time.perf_counter()
        train(spec, Dataset(x, y), Clock(), fused=True)
    total = stamps[-1] - started
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    return {"device": str(jax.devices()[0]), "samples_per_s": rows * epochs / total,
            "steady_samples_per_s": rows / steady}  # fmt: skip


def main() -> None:
    rows, epochs = int(os.environ.get("ROWS", 60_000)), int(os.environ.get("EPOCHS", 5))
    if len(sys.argv) > 1:  # a child: one measurement
        print(json.dumps(measure(sys.argv[1], sys.argv[2], rows, epochs)))
        return
    print(f"{rows} synthetic rows, batch 128, {epochs} epochs; samples/s overall "
          f"(compilation included) and after the first epoch")  # fmt: skip
    for network in NETWORKS:
        results = {}
        for mode, platform in (("service, GPU", ""), ("service, host CPUs", "cpu"),
                               ("plain fit, steps_per_execution=32", "")):  # fmt: skip
            environment = {**os.environ, "KERAS_BACKEND": "jax"}
            if platform:
                environment["JAX_PLATFORMS"] = platform
            output = subprocess.run([sys.executable, __file__, network, mode], env=environment,
                                    capture_output=True, text=True, check=True).stdout  # fmt: skip
            results[mode] = json.loads(output.strip().splitlines()[-1])
            result = results[mode]
            print(
                f"  {network:16} {mode:36} {result['device']:>10} "
                f"{result['samples_per_s']:12,.0f} {result['steady_samples_per_s']:12,.0f}"
            )
        gpu, cpu = (results[mode]["steady_samples_per_s"]
                    for mode in ("service, GPU", "service, host CPUs"))  # fmt: skip
        peer = results["plain fit, steps_per_execution=32"]["steady_samples_per_s"]
        print(
            f"  {network}: GPU / CPU {gpu / cpu:.1f}x (target >= 10x for the wide MLP); "
            f"GPU / plain fit spe=32 {gpu / peer:.2f}x"
        )


if __name__ == "__main__":
    main()
