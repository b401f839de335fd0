"""Micro-benchmark (a prototype, not wired into make): trials of the seed's
binary program (examples/breast_cancer.json) side by side in one vmapped
program (models.training.fused) against one trial trained alone by the
fused trainer, in one process.

    .venv/bin/python -m bench.search_group [--trials 64] [--epochs 30] [--check 2]

The trials are a grid of learning rate x seed, shuffling off. Both sides pay
for building and compiling once, as a job would (the single trial's second
run is timed; the first warms JAX). `--check K` also trains the first K
trials alone and prints the largest difference in final loss. Many separate
jobs through a worker are bench.train's to measure.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from models.training.backend import configure_backend

# As a worker starts: JAX, its one-off eager ops compiled quickly (before Keras is imported).
configure_backend("jax", quick_eager_compiles=True)

from bench.examples import example_data  # noqa: E402
from models.datasets import Dataset  # noqa: E402
from models.training.fit import SilentObserver, train  # noqa: E402
from models.training.fused.group_trainer import program_groups, train_group  # noqa: E402
from models.training.search.space import Search, trial_specs  # noqa: E402
from models.validation import validate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--check", type=int, default=0)
    arguments = parser.parse_args()

    spec, dataset, _ = example_data("breast_cancer")
    spec_dict: dict[str, Any] = spec.model_dump(mode="json")
    spec_dict["fit"].update(epochs=arguments.epochs, shuffle=False)
    seeds = max(1, int(math.sqrt(arguments.trials)))
    rates = math.ceil(arguments.trials / seeds)
    space = {
        "compile.optimizer.learning_rate": {"choice": [0.0005 * (i + 1) for i in range(rates)]},
        "seed": {"choice": list(range(seeds))},
    }
    search = validate(Search, {"space": space, "method": "grid"}, ("search",))
    trials = trial_specs(spec_dict, search)[: arguments.trials]
    assert program_groups(trials) == [[trial.index for trial in trials]]
    data = Dataset(dataset.x, dataset.y)

    train(trials[0].spec, data, SilentObserver())  # JAX's start-up, not the trial's
    started = time.perf_counter()
    train(trials[0].spec, data, SilentObserver())
    one = time.perf_counter() - started

    started = time.perf_counter()
    group = train_group(trials, data)
    together = time.perf_counter() - started

    report: dict[str, Any] = {
        "trials": len(trials),
        "epochs": arguments.epochs,
        "rows": len(dataset.x),
        "one_trial_s": round(one, 3),
        "group_s": round(together, 3),
        "group_fit_s": round(group.fit_seconds, 3),
        "ratio_group_to_one": round(together / one, 2),
        "sequential_estimate_ratio": round(len(trials) * one / together, 1),
        "traces": group.traces,
    }
    if arguments.check:
        worst = 0.0
        for position in range(min(arguments.check, len(trials))):
            alone = train(trials[position].spec, data, SilentObserver())
            worst = max(
                worst, abs(alone.history["loss"][-1] - group.histories[position]["loss"][-1])
            )
        report["max_final_loss_difference"] = worst
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
