"""Floors for bench.search, each measured in a process of its own (its XLA
flags set before JAX starts), each printing one JSON line:

    python -m bench.vmap_floor alone < {"specs": [spec, ...]}
        each spec trained alone, as a plain job: final losses (run under
        XLA's default threads and on one: what summing in another order costs)
    python -m bench.vmap_floor epochs < {"spec": spec, "search": search}
        the median epoch of one trial, of the search's trials side by side,
        and of the same MLP vmapped by hand in JAX: the least it can cost
    python -m bench.vmap_floor folds < {"spec": spec, "folds": k}
        one fit against the k folds with their refit side by side: the time
        to the end of the first epoch and the median epoch after it
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.training.search.space import Trial

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
EXAMPLE = "breast_cancer"
TIMED_EPOCHS = 30  # of the hand-written program
ROUNDS = 3


def run_floor(command: str, request: dict[str, Any], one_thread: bool = False) -> Any:
    """`python -m bench.vmap_floor command`, fed `request`: its JSON answer."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if one_thread:
        environment["XLA_FLAGS"] = f"{environment.get('XLA_FLAGS', '')} {ONE_THREAD_FLAGS}"
    result = subprocess.run(
        [sys.executable, "-m", "bench.vmap_floor", command], input=json.dumps(request),
        capture_output=True, text=True, env=environment, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"bench.vmap_floor {command} exited with {result.returncode}:\n"
                           f"{result.stderr[-4000:]}")  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def alone_losses(specs: list[dict[str, Any]]) -> list[float]:
    from bench.examples import example_data
    from models.training.fit import SilentObserver, train
    from models.training.spec import ModelSpec

    _, dataset, _ = example_data(EXAMPLE)
    return [
        train(ModelSpec.model_validate(spec), dataset, SilentObserver()).history["loss"][-1]
        for spec in specs
    ]


class EpochClock:
    """An observer (of train or train_group) that timestamps each epoch's end."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_epoch_end(self, epoch: int, logs: Any) -> None:
        self.ends.append(time.perf_counter())

    def should_stop(self) -> bool:
        return False

    def median_epoch_s(self) -> float:
        return statistics.median(b - a for a, b in zip(self.ends, self.ends[1:], strict=False))


def timed_fit(fit: Callable[[EpochClock], object]) -> Callable[[], float]:
    """`fit`, compiled by a first run: a function that runs it again and
    answers its median epoch."""
    fit(EpochClock())

    def timed() -> float:
        clock = EpochClock()
        fit(clock)
        return clock.median_epoch_s()

    return timed


def search_trials(spec: dict[str, Any], search: dict[str, Any]) -> list[Trial]:
    from models.training.search.space import Search, trial_specs
    from models.validation import validate

    return trial_specs(spec, validate(Search, search, ("search",)))


def fitserve_programs(trials: list[Trial]) -> list[Callable[[], float]]:
    """One trial (train, as its plain job) and `trials` side by side
    (train_group, as their search job), timed."""
    from bench.examples import example_data
    from models.training.fit import train
    from models.training.fused.group_trainer import train_group

    _, dataset, _ = example_data(EXAMPLE)
    return [
        timed_fit(lambda clock: train(trials[0].spec, dataset, clock)),
        timed_fit(lambda clock: train_group(trials, dataset, clock)),
    ]


def activation_function(name: str | None) -> Callable[[Any], Any]:
    import jax

    if name in (None, "linear"):
        return lambda h: h
    return getattr(jax.nn, name)  # type: ignore[no-any-return]


def hand_written_program(spec: dict[str, Any], trials: int) -> Callable[[], float]:
    """The binary program's network (dense layers, a sigmoid unit) as a pure
    JAX function, `trials` copies vmapped: Glorot-uniform kernels, Adam as
    Keras' defaults, the epoch one lax.scan over the batches (the last, partial
    one after it), learning rates spread as a search's. Compiled: a function
    that runs TIMED_EPOCHS epochs from the same start and answers their median."""
    import jax
    import jax.numpy as jnp

    from bench.examples import example_data
    from models.training.backend import FULL_OPTIMIZATION

    layers = spec["layers"]
    assert all(layer["type"] == "dense" for layer in layers), layers
    assert layers[-1] == {**layers[-1], "units": 1, "activation": "sigmoid"}, layers[-1]
    assert spec["compile"]["loss"] == "binary_crossentropy", spec["compile"]
    _, dataset, encoded = example_data(EXAMPLE)
    x = jnp.asarray(dataset.x, jnp.float32)
    y = jnp.asarray(encoded, jnp.float32).reshape(len(x), 1)
    batch = spec["fit"]["batch_size"]
    full_batches, rest = divmod(len(x), batch)
    widths = [spec["input_shape"][0], *(layer["units"] for layer in layers)]
    hidden = [activation_function(layer.get("activation")) for layer in layers[:-1]]

    def initial(key: Any) -> list[tuple[Any, Any]]:
        params = []
        for key_, (fan_in, fan_out) in zip(
            jax.random.split(key, len(layers)), zip(widths, widths[1:], strict=False), strict=True
        ):
            limit = (6 / (fan_in + fan_out)) ** 0.5
            kernel = jax.random.uniform(key_, (fan_in, fan_out), jnp.float32, -limit, limit)
            params.append((kernel, jnp.zeros(fan_out)))
        return params

    def loss(params: list[tuple[Any, Any]], x_batch: Any, y_batch: Any) -> Any:
        h = x_batch
        for (kernel, bias), activation in zip(params[:-1], hidden, strict=True):
            h = activation(h @ kernel + bias)
        kernel, bias = params[-1]
        logits = h @ kernel + bias
        return jnp.mean(jax.nn.softplus(logits) - logits * y_batch)  # cross-entropy of the sigmoid

    def step(state: Any, batch_rows: tuple[Any, Any], rate: Any) -> tuple[Any, Any]:
        params, first, second, count = state
        value, grads = jax.value_and_grad(loss)(params, *batch_rows)
        count = count + 1
        first = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, first, grads)
        second = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, second, grads)
        scale = rate * jnp.sqrt(1 - 0.999**count) / (1 - 0.9**count)
        params = jax.tree.map(
            lambda p, m, v: p - scale * m / (jnp.sqrt(v) + 1e-7), params, first, second
        )
        return (params, first, second, count), value

    def epoch(state: Any, rate: Any) -> tuple[Any, Any]:
        def scanned(state: Any, index: Any) -> tuple[Any, Any]:
            rows = (jax.lax.dynamic_slice_in_dim(x, index * batch, batch),
                    jax.lax.dynamic_slice_in_dim(y, index * batch, batch))  # fmt: skip
            return step(state, rows, rate)

        state, values = jax.lax.scan(scanned, state, jnp.arange(full_batches))
        if rest:
            state, last = step(state, (x[-rest:], y[-rest:]), rate)
            values = jnp.append(values, last)
        return state, values.mean()

    params = jax.vmap(initial)(jax.random.split(jax.random.PRNGKey(0), trials))
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (params, zeros, zeros, jnp.zeros(trials, jnp.int32))
    rates = jnp.geomspace(1e-4, 1e-1, trials)
    compiled = jax.jit(jax.vmap(epoch), compiler_options=FULL_OPTIMIZATION)
    start = jax.block_until_ready(compiled(state, rates))[0]

    def timed() -> float:
        state, times = start, []
        for _ in range(TIMED_EPOCHS):
            started = time.perf_counter()
            state = jax.block_until_ready(compiled(state, rates))[0]
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    return timed


def epochs(spec: dict[str, Any], search: dict[str, Any]) -> dict[str, Any]:
    """Median epochs of each program, 1 trial and all, timed in ROUNDS rounds
    taking turns (the host's noise hits all alike): the median round's."""
    trials = search_trials(spec, search)
    fitserve = fitserve_programs(trials)
    programs = {("fitserve", "one"): fitserve[0], ("fitserve", "all"): fitserve[1],
                ("hand_written", "one"): hand_written_program(spec, 1),
                ("hand_written", "all"): hand_written_program(spec, len(trials))}  # fmt: skip
    times: dict[tuple[str, str], list[float]] = {key: [] for key in programs}
    for _ in range(ROUNDS):
        for key, program in programs.items():
            times[key].append(program())
    answer: dict[str, Any] = {"trials": len(trials), "rounds": ROUNDS}
    for (name, size), values in times.items():
        answer.setdefault(name, {})[size] = statistics.median(values)
    return answer


def fold_phases(spec: dict[str, Any], folds: int) -> dict[str, Any]:
    """First-epoch and median-epoch seconds of one fit and of `folds` folds
    with the refit, taking turns (fold_phases in the module's docstring)."""
    import tempfile

    from bench.examples import example_data
    from models.training.backend import enable_compilation_cache
    from models.training.fit import train
    from models.training.fused.group_trainer import train_group
    from models.training.search.space import Trial
    from models.training.spec import ModelSpec

    enable_compilation_cache(Path(tempfile.mkdtemp(prefix="fitserve-floor-xla-")))
    _, dataset, _ = example_data("iris")
    model_spec = ModelSpec.model_validate(spec)
    fits: dict[str, Callable[[EpochClock], object]] = {
        "one": lambda clock: train(model_spec, dataset, clock),
        "folds": lambda clock: train_group([Trial(0, {}, model_spec)], dataset, clock,
                                           folds=folds, refit=True),
    }  # fmt: skip
    phases: dict[str, dict[str, list[float]]] = {
        name: {"first_s": [], "epoch_s": []} for name in fits
    }
    for round_ in range(ROUNDS + 1):
        for name, fit in fits.items():
            clock = EpochClock()
            started = time.perf_counter()
            fit(clock)
            if round_:  # the first round compiles (the cache's first entries)
                phases[name]["first_s"].append(clock.ends[0] - started)
                phases[name]["epoch_s"].append(clock.median_epoch_s())
    answer: dict[str, Any] = {"rounds": ROUNDS, "folds": folds}
    for name, values in phases.items():
        answer[name] = {phase: statistics.median(times) for phase, times in values.items()}
    return answer


def main() -> None:
    from models.training.backend import configure_backend

    configure_backend("jax", quick_eager_compiles=True)  # as the worker starts
    request = json.loads(sys.stdin.read())
    answer: Any
    if sys.argv[1] == "alone":
        answer = alone_losses(request["specs"])
    elif sys.argv[1] == "folds":
        answer = fold_phases(request["spec"], request["folds"])
    else:
        answer = epochs(request["spec"], request["search"])
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
