"""The plain Keras script for one example program: build the network, compile
it with the spec's loss, optimizer and metrics, `model.fit` on numpy arrays.
Times `fit` only, after a one-epoch warm-up on a separate model, and prints
JSON. Run in its own process: the backend is chosen before Keras is imported.

    python -m bench.plain_fit BACKEND EXAMPLE REPEATS
"""

import json
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = sys.argv[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from bench.examples import example_data  # noqa: E402
from models.training.builder import build_model  # noqa: E402


def main() -> None:
    spec, dataset, y = example_data(sys.argv[2])
    repeats = int(sys.argv[3])
    warm = build_model(spec)
    warm.fit(dataset.x, y, epochs=1, batch_size=spec.fit.batch_size, verbose=0)
    timings, history = [], {}
    for _ in range(repeats):
        if spec.seed is not None:
            keras.utils.set_random_seed(spec.seed)
        model = build_model(spec)
        started = time.perf_counter()
        history = model.fit(dataset.x, y, epochs=spec.fit.epochs,
                            batch_size=spec.fit.batch_size, verbose=0).history  # fmt: skip
        timings.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "fit_s": statistics.median(timings),
                "metrics": {name: values[-1] for name, values in history.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
