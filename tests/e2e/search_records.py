"""Search jobs stored through the real JobStore on the live service's Redis,
for the tests of what the dashboard and the CLI show of them.

A finished search is written as the worker leaves one (no worker trains it): five
trials over three parameters, one of them text (with markup in it, which
must show as text), each scored on two folds; trial 4 stopped by halving
with the best score of all (so it must still rank below the finished ones),
trial 3 failed. Ranked by val_loss, lowest first: 1, 0, 2, then 4, then 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from models.jobs.store import JobStore
from models.redis_client import open_redis
from tests.e2e.conftest import Live

LEARNING_RATE = "compile.optimizer.learning_rate"
OPTIMIZER = "compile.optimizer.name"
MARKUP = "<b>x</b>"
RANK_ORDER = [1, 0, 2, 4, 3]
BEST = 1
EPOCHS = 6
SPEC: dict[str, Any] = {
    "input_shape": [4],
    "layers": [{"type": "dense", "units": 3, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
    "fit": {"epochs": EPOCHS, "batch_size": 8, "folds": 2},
}
SEARCH = {
    "trials": 5, "method": "random", "seed": 0, "metric": None, "mode": None,
    "space": {LEARNING_RATE: {"log_uniform": [0.0001, 0.1]},
              OPTIMIZER: {"choice": ["adam", "sgd", MARKUP]}, "seed": {"int": [0, 1000]}},
    "halving": {"rungs": [3], "keep": 0.8},
}  # fmt: skip
# (trial, learning rate, optimizer, seed, final val_loss, state, epochs)
TRIALS = [
    (0, 0.02, "adam", 17, 0.45, "succeeded", EPOCHS),
    (1, 0.005, MARKUP, 3, 0.30, "succeeded", EPOCHS),
    (2, 0.09, "sgd", 900, 0.61, "succeeded", EPOCHS),
    (3, 0.0002, "sgd", 41, None, "failed", 1),
    (4, 0.0007, "adam", 5, 0.20, "stopped", 3),
]


def fold_summary(values: list[float]) -> dict[str, Any]:
    mean = sum(values) / len(values)
    std = (sum((value - mean) ** 2 for value in values) / len(values)) ** 0.5
    return {"mean": mean, "std": std, "values": values}


def trial_record(index: int, rate: float, optimizer: str, seed: int, val_loss: float | None,
                 state: str, epochs: int) -> dict[str, Any]:  # fmt: skip
    params = {LEARNING_RATE: rate, OPTIMIZER: optimizer, "seed": seed}
    record: dict[str, Any] = {"index": index, "params": params, "metrics": {}, "state": state,
                              "epochs": epochs, "group": 0}  # fmt: skip
    if val_loss is not None:
        folds = {"loss": fold_summary([val_loss - 0.12, val_loss - 0.08]),
                 "val_loss": fold_summary([val_loss - 0.02, val_loss + 0.02])}  # fmt: skip
        record["folds"] = folds
        record["metrics"] = {name: summary["mean"] for name, summary in folds.items()}
    return record


def history(trials: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """One entry per epoch of the one group: each trial's curve (the fold mean)
    and each fold's, falling to the trial's final value."""
    curves: dict[str, list[Any]] = {"epoch": list(range(1, EPOCHS + 1)), "group": [0] * EPOCHS}
    for trial in trials:
        if "folds" not in trial:
            continue
        for name, summary in trial["folds"].items():
            for key, final in [(f"{trial['index']}:{name}", summary["mean"]),
                               *((f"{trial['index']}:f{fold}:{name}", value) for fold, value
                                 in enumerate(summary["values"], start=1))]:  # fmt: skip
                curves[key] = [final + 0.5 / epoch for epoch in range(1, trial["epochs"] + 1)]
    return curves


def store_finished_search(live: Live, model: str) -> str:
    """The job's id; it is in Redis only, its state moved as the worker moves one."""
    return store_finished(live, model, [trial_record(*row) for row in TRIALS], SEARCH)


def store_finished_folds(live: Live, model: str) -> str:
    """A k-fold job without a search: one trial, trained on each of two folds."""
    only = {**trial_record(*TRIALS[BEST]), "index": 0, "params": {}}
    return store_finished(live, model, [only], search=None)


def store_finished(
    live: Live, model: str, trials: list[dict[str, Any]], search: dict[str, Any] | None
) -> str:
    best = min((trial for trial in trials if trial["state"] == "succeeded"),
               key=lambda trial: trial["metrics"]["val_loss"])  # fmt: skip
    client = open_redis(live.settings)
    try:
        jobs = JobStore(client, live.settings.redis_prefix)
        job_id = jobs.create("train", model, "ds-not-trained-here", spec=SPEC)["id"]
        jobs.update(job_id, search=search, ranking={"metric": "val_loss", "mode": "min"},
                    trials=trials, history=history(trials))  # fmt: skip
        result = {"model": model, "version": 1, "metrics": best["metrics"]}
        summary = {name: best[name] for name in ("index", "params", "metrics", "folds")}
        progress = {"epoch": EPOCHS, "epochs": EPOCHS, "fraction": 1.0, "eta_s": 0.0}
        moved = jobs.transition(job_id, "succeeded", ("queued",), best=summary, result=result,
                                progress=progress)  # fmt: skip
        assert moved == "queued", moved
    finally:
        client.close()
    return job_id


class RunningSearch:
    """A search job that this test runs as its worker would: claimed under a
    lease, each epoch of its one group appended to its history (what the
    events stream sends), then ended."""

    LEASE_S = 300.0

    def __init__(self, jobs: JobStore, model: str) -> None:
        self.jobs = jobs
        self.trials = [trial_record(*row) for row in TRIALS[:3]]
        self.id = jobs.create("train", model, "ds-not-trained-here", spec=SPEC)["id"]
        queued = [{**trial, "metrics": {}, "state": "queued", "epochs": 0} for trial in self.trials]
        for trial in queued:
            trial.pop("folds", None)
        jobs.update(self.id, search=SEARCH, ranking={"metric": "val_loss", "mode": "min"},
                    trials=queued, best=None)  # fmt: skip
        self.curves = history(self.trials)
        self.sent = 0

    def start(self) -> None:
        claim = self.jobs.claim(self.id, "test-worker", "cpu", self.LEASE_S, max_attempts=3)
        assert claim.outcome == "started", claim
        self.token = claim.token

    def epochs(self, count: int) -> None:
        """The next `count` epochs of the group: one history entry each."""
        entries = [
            {key: values[epoch] for key, values in self.curves.items() if epoch < len(values)}
            for epoch in range(self.sent, self.sent + count)
        ]
        progress = {"epoch": self.sent + count, "epochs": EPOCHS,
                    "fraction": (self.sent + count) / EPOCHS, "eta_s": 1.0}  # fmt: skip
        assert self.jobs.append_epochs(self.id, self.token, self.sent, entries, progress) is None
        self.sent += count

    def succeed(self) -> None:
        best = self.trials[BEST]
        summary = {name: best[name] for name in ("index", "params", "metrics", "folds")}
        self.jobs.update(self.id, token=self.token, trials=self.trials, best=summary)
        result = {"model": "search", "version": 1, "metrics": best["metrics"]}
        moved = self.jobs.transition(self.id, "succeeded", ("running",), token=self.token,
                                     result=result)  # fmt: skip
        assert moved == "running", moved


@contextmanager
def running_search(live: Live, model: str) -> Iterator[RunningSearch]:
    client = open_redis(live.settings)
    try:
        yield RunningSearch(JobStore(client, live.settings.redis_prefix), model)
    finally:
        client.close()
