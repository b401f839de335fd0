"""The worker's training path on a GPU and on the same host's CPUs (bench/gpu.sh).

For the seed MNIST MLP (784-512-10) and a wide MLP (784-4096-4096-10), on
synthetic rows, batch 128: samples/s of `models.training.train` (fused, JAX)
on each device (and on the GPU with `precision: mixed_bfloat16`), against
plain Keras `fit` with `steps_per_execution=32` on the GPU. Each runs in a
process of its own (JAX_PLATFORMS=cpu keeps the CPU run off the GPU); a
service run trains twice, as a worker would two jobs, and reports device
memory after each job's clean-up beside the peak. Then TRIALS (256) trials
of the seed MLP side by side in one program (models.training.fused), as a
search of learning rate x seed trains them, against one trial alone.
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


def spec_for(hidden: list[int], epochs: int, precision: str = "float32") -> dict:
    return {
        "input_shape": [784],
        "layers": [*({"type": "dense", "units": units, "activation": "relu"} for units in hidden),
                   {"type": "dense", "units": 10, "activation": "softmax"}],
        "compile": {"loss": "categorical_crossentropy", "optimizer": "rmsprop",
                    "metrics": ["accuracy"]},
        "fit": {"epochs": epochs, "batch_size": 128},
        "seed": 1,
        "precision": precision,
    }  # fmt: skip


def measure(network: str, mode: str, rows: int, epochs: int) -> dict:
    """In this process: train and time; returns samples/s overall and after epoch 1."""
    import gc

    import jax
    import keras
    import numpy as np

    from models.datasets import Dataset
    from models.training.builder import build_model
    from models.training.fit import SilentObserver, train
    from models.training.spec import ModelSpec

    generator = np.random.default_rng(0)
    x = generator.random((rows, 784), dtype=np.float32)
    y = generator.integers(0, 10, rows)
    precision = "mixed_bfloat16" if "mixed" in mode else "float32"
    spec = ModelSpec.model_validate(spec_for(NETWORKS[network], epochs, precision))
    stamps: list[float] = []
    memory: list[str] = []

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
        # A second job (where the device reports its memory: GPUs do, CPUs
        # do not) shows what the first left behind.
        jobs = 2 if jax.devices()[0].memory_stats() else 1
        started = time.perf_counter()
        for job in range(jobs):
            train(spec, Dataset(x, y), Clock() if job == 0 else SilentObserver(), fused=True)
            keras.backend.clear_session()  # as the worker ends a job
            gc.collect()
            memory.append(_memory_in_use(jax.devices()[0]))
    total = stamps[-1] - started  # the first job's
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    return {"device": str(jax.devices()[0]), "samples_per_s": rows * epochs / total,
            "steady_samples_per_s": rows / steady, "memory": " / ".join(memory)}  # fmt: skip


def measure_search(trials: int, rows: int, epochs: int) -> dict:
    """In this process: `trials` seed MNIST MLPs (learning rates x seeds, one
    shape group) trained side by side; samples/s across all trials."""
    import math

    import jax
    import numpy as np

    from models.datasets import Dataset
    from models.training.fused.group_trainer import train_group
    from models.training.search.space import Search, trial_specs
    from models.validation import validate

    generator = np.random.default_rng(0)
    x = generator.random((rows, 784), dtype=np.float32)
    y = generator.integers(0, 10, rows)
    rates = math.isqrt(trials)  # a square grid: TRIALS=256 is 16 rates x 16 seeds
    # Learning rates from 1e-4 to 1e-2, evenly on a log scale.
    learning_rates = [float(f"{1e-4 * 100 ** (i / max(1, rates - 1)):.3g}") for i in range(rates)]
    space = {"compile.optimizer.learning_rate": {"choice": learning_rates},
             "seed": {"choice": list(range(trials // rates))}}  # fmt: skip
    search = validate(Search, {"method": "grid", "space": space}, ("search",))
    specs = trial_specs(spec_for(NETWORKS["seed MNIST MLP"], epochs), search)
    stamps: list[float] = []

    class Clock:
        def on_epoch_end(self, epoch: int, logs: list) -> None:
            stamps.append(time.perf_counter())

        def should_stop(self) -> bool:
            return False

    started = time.perf_counter()
    train_group(specs, Dataset(x, y), Clock())
    total = stamps[-1] - started
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    return {"device": str(jax.devices()[0]), "trials": len(specs),
            "samples_per_s": rows * epochs * len(specs) / total,
            "steady_samples_per_s": rows * len(specs) / steady, "epoch_s": steady,
            "memory": _memory_in_use(jax.devices()[0])}  # fmt: skip


def _memory_in_use(device: object) -> str:
    """Device memory in use now, and the peak, in MiB (GPUs report it; CPUs do not)."""
    stats = device.memory_stats() or {}  # type: ignore[attr-defined]
    if "bytes_in_use" not in stats:
        return "n/a"
    in_use, peak = stats["bytes_in_use"] / 2**20, stats.get("peak_bytes_in_use", 0) / 2**20
    return f"{in_use:,.0f} of peak {peak:,.0f} MiB"


def main() -> None:
    rows, epochs = int(os.environ.get("ROWS", 60_000)), int(os.environ.get("EPOCHS", 5))
    trials = int(os.environ.get("TRIALS", 256))
    if len(sys.argv) > 1:  # a child: one measurement
        if sys.argv[1] == "search":
            print(json.dumps(measure_search(trials, rows, epochs)))
        else:
            print(json.dumps(measure(sys.argv[1], sys.argv[2], rows, epochs)))
        return
    print(f"{rows} synthetic rows, batch 128, {epochs} epochs; samples/s overall "
          f"(compilation included) and after the first epoch; device memory in use after "
          f"job 1 / job 2 (a worker runs jobs back to back)")  # fmt: skip
    one_trial = 0.0
    for network in NETWORKS:
        results = {}
        for mode, platform in (("service, GPU", ""), ("service, GPU, mixed_bfloat16", ""),
                               ("service, host CPUs", "cpu"),
                               ("plain fit, steps_per_execution=32", "")):  # fmt: skip
            results[mode] = _child([network, mode], platform)
            result = results[mode]
            if platform != "cpu" and "cpu" in result["device"].lower():
                print(f"  WARNING: JAX sees no GPU; the {mode!r} row ran on {result['device']}")
            print(
                f"  {network:16} {mode:36} {result['device']:>10} "
                f"{result['samples_per_s']:12,.0f} {result['steady_samples_per_s']:12,.0f}"
                + (f"   memory {result['memory']}" if result.get("memory") else "")
            )
        gpu, cpu = (results[mode]["steady_samples_per_s"]
                    for mode in ("service, GPU", "service, host CPUs"))  # fmt: skip
        peer = results["plain fit, steps_per_execution=32"]["steady_samples_per_s"]
        mixed = results["service, GPU, mixed_bfloat16"]["steady_samples_per_s"]
        print(
            f"  {network}: GPU / CPU {gpu / cpu:.1f}x (target >= 10x for the wide MLP); "
            f"GPU / plain fit spe=32 {gpu / peer:.2f}x; mixed_bfloat16 / float32 {mixed / gpu:.2f}x"
        )
        if network == "seed MNIST MLP":
            one_trial = gpu
    search = _child(["search"], "")
    if "cpu" in search["device"].lower():
        print(f"  WARNING: JAX sees no GPU; the search row ran on {search['device']}")
    print(
        f"  seed MNIST MLP, {search['trials']} trials side by side (train_group, learning rate "
        f"x seed): {search['steady_samples_per_s']:,.0f} samples/s across the trials after the "
        f"first epoch ({search['samples_per_s']:,.0f} overall), an epoch of all "
        f"{search['epoch_s']:.3f} s; = {search['steady_samples_per_s'] / one_trial:.1f}x one "
        f"trial alone ({one_trial:,.0f}); memory {search['memory']}"
    )


def _child(arguments: list[str], platform: str) -> dict:
    """One measurement in a process of its own (JAX_PLATFORMS=platform when given)."""
    environment = {**os.environ, "KERAS_BACKEND": "jax"}
    if platform:
        environment["JAX_PLATFORMS"] = platform
    child = subprocess.run(
        [sys.executable, "-m", "bench.gpu_train", *arguments],
        env=environment, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if child.returncode != 0:  # the device run shows only this output: say why
        sys.exit(f"{' '.join(arguments)}: failed\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    main()
