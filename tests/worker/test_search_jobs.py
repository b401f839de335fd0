"""Search and k-fold jobs through the job runner, in process: real Redis, a
real store under tmp_path, real trials trained side by side. What the record
says about every trial, what is published, and what halving stops."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import keras
import numpy as np
import pytest
import redis
from sklearn.datasets import load_iris

from models.datasets import Dataset
from models.records import JobRecord
from models.serving.predictor import load_version
from models.settings import Settings
from models.training.fit import SilentObserver, train
from models.training.search.folds import fold_rows
from models.training.search.space import Search
from models.training.search.trial_plan import job_trials, search_json
from models.training.spec import ModelSpec
from tests.worker.test_runner import worker_context
from worker.context import WorkerContext
from worker.runner import run_training_job

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="trials train side by side on JAX only"
)

X, Y = load_iris(return_X_y=True)
ORDER = np.random.default_rng(0).permutation(len(X))[:90]  # a shuffled third of iris out
IRIS_X, IRIS_Y = X[ORDER].round(2), [["setosa", "versicolor", "virginica"][k] for k in Y[ORDER]]


def iris_spec(**fit: Any) -> dict[str, Any]:
    return ModelSpec.model_validate({
        "input_shape": [4],
        "layers": [{"type": "normalization"}, {"type": "dense", "units": 8, "activation": "relu"},
                   {"type": "dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "categorical_crossentropy", "optimizer": "adam",
                    "metrics": ["accuracy"]},
        "fit": {"epochs": 4, "batch_size": 16, "shuffle": False, **fit},
        "seed": 5,
    }).model_dump(mode="json")  # fmt: skip


@pytest.fixture
def context(settings: Settings, redis_client: redis.Redis) -> WorkerContext:
    return worker_context(settings, redis_client)


def store_iris(context: WorkerContext) -> str:
    body = json.dumps({"x": IRIS_X.tolist(), "y": IRIS_Y}).encode()
    return context.datasets.save(body, "application/json")[0]["id"]


def run(context: WorkerContext, spec: dict[str, Any], search: dict[str, Any] | None) -> JobRecord:
    """Create the job as the API does (its plan's record fields), then run it."""
    stored = search_json(Search.model_validate(search)) if search else None
    plan = job_trials(spec, stored)
    job = context.jobs.create("train", "iris", store_iris(context), spec=spec,
                              extra={"search": stored, **plan.record()})  # fmt: skip
    return run_training_job(job["id"], context)


SEARCH = {
    "trials": 4,
    "seed": 2,
    "space": {
        "compile.optimizer.learning_rate": {"log_uniform": [0.001, 0.1]},
        "layers.1.units": {"choice": [4, 8]},
        "seed": {"int": [0, 100]},
    },
}


def test_a_search_records_every_trial_and_publishes_the_best_with_its_params(
    context: WorkerContext,
) -> None:
    finished = run(context, iris_spec(validation_split=0.25), SEARCH)
    assert finished["state"] == "succeeded", finished["error"]
    trials = finished["trials"]
    assert [trial["state"] for trial in trials] == ["succeeded"] * 4
    assert all(trial["epochs"] == 4 and "val_loss" in trial["metrics"] for trial in trials)
    # Each trial's curve is in the history, under its index.
    for trial in trials:
        curve = finished["history"][f"{trial['index']}:val_loss"]
        assert len(curve) == 4 and curve[-1] == trial["metrics"]["val_loss"]
    best = min(trials, key=lambda trial: trial["metrics"]["val_loss"])
    assert finished["best"]["index"] == best["index"]
    assert finished["best"]["params"] == best["params"]
    assert finished["metrics"] == pytest.approx(best["metrics"])
    version = finished["result"]["version"]
    metadata = context.models.metadata("iris", version)
    assert metadata["search"]["job"] == finished["id"]
    assert metadata["search"]["params"] == best["params"]
    assert metadata["search"]["trial"] == best["index"]
    assert metadata["search"]["space"]["seed"] == {"int": [0, 100]}
    # The published spec is the winner's: its own width and learning rate.
    assert metadata["spec"]["layers"][1]["units"] == best["params"]["layers.1.units"]
    # And the published weights are the winner's: they score its val_loss.
    loaded = load_version(context.models, "iris", version)
    held_out = slice(int(len(IRIS_X) * 0.75), None)
    probabilities = loaded.predict(IRIS_X[held_out].astype("float32"))
    labels = np.array([["setosa", "versicolor", "virginica"].index(y) for y in IRIS_Y[held_out]])
    loss = -np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1)))
    assert loss == pytest.approx(best["metrics"]["val_loss"], rel=1e-4)


def test_halving_stops_the_worst_at_each_rung_and_ranks_only_finishers(
    context: WorkerContext,
) -> None:
    search = {**SEARCH, "trials": 8, "space": {**SEARCH["space"]},
              "halving": {"rungs": [2], "keep": 0.5}}  # fmt: skip
    del search["space"]["layers.1.units"]  # one group: halving ranks within a group
    finished = run(context, iris_spec(validation_split=0.25), search)
    assert finished["state"] == "succeeded", finished["error"]
    states = [trial["state"] for trial in finished["trials"]]
    assert states.count("stopped") == 4 and states.count("succeeded") == 4
    at_rung = {t["index"]: finished["history"][f"{t['index']}:val_loss"][1]
               for t in finished["trials"]}  # fmt: skip
    kept = {t["index"] for t in finished["trials"] if t["state"] == "succeeded"}
    assert max(at_rung[index] for index in kept) <= min(
        value for index, value in at_rung.items() if index not in kept
    )
    assert all(t["epochs"] == 2 for t in finished["trials"] if t["state"] == "stopped")
    assert finished["best"]["index"] in kept


def test_a_fold_job_reports_each_folds_score_and_publishes_a_refit_on_every_row(
    context: WorkerContext,
) -> None:
    spec = iris_spec(folds=3)
    finished = run(context, spec, None)
    assert finished["state"] == "succeeded", finished["error"]
    (trial,) = finished["trials"]
    folds = trial["folds"]["val_loss"]
    assert len(folds["values"]) == 3
    assert folds["mean"] == pytest.approx(np.mean(folds["values"]))
    assert folds["std"] == pytest.approx(np.std(folds["values"]))
    assert finished["best"]["folds"] == trial["folds"]
    # A fold's score is that fold trained alone.
    training, validation = fold_rows(len(IRIS_X), 3)[1]
    rows = np.concatenate([training, validation])
    alone_spec = ModelSpec.model_validate(
        {**spec, "fit": {**spec["fit"], "folds": None,
                         "validation_split": len(validation) / len(rows) - 1e-9}}
    )  # fmt: skip
    alone = train(alone_spec, Dataset(IRIS_X[rows], np.array(IRIS_Y, dtype=object)[rows]),
                  SilentObserver())  # fmt: skip
    assert alone.history["val_loss"][-1] == pytest.approx(folds["values"][1], abs=1e-5)
    # The refit trains beside the folds: its logs are in the same epochs'
    # entries, under "0:refit:", and it is what is published.
    history = finished["history"]
    assert history["epoch"] == [1, 2, 3, 4] and history["group"] == [0] * 4
    metadata = context.models.metadata("iris", finished["result"]["version"])
    assert metadata["folds"]["val_loss"] == folds
    assert "search" not in metadata
    assert metadata["epochs_run"] == 4 and "val_loss" not in metadata["metrics"]
    assert metadata["metrics"]["loss"] == pytest.approx(history["0:refit:loss"][-1], rel=1e-6)
    # ... and ends where the spec trained alone on every row ends.
    every_row = ModelSpec.model_validate({**spec, "fit": {**spec["fit"], "folds": None}})
    refit_alone = train(every_row, Dataset(IRIS_X, np.array(IRIS_Y, dtype=object)),
                        SilentObserver())  # fmt: skip
    assert metadata["metrics"]["loss"] == pytest.approx(refit_alone.metrics["loss"], abs=1e-5)


def test_a_search_with_folds_ranks_trials_by_their_fold_mean(context: WorkerContext) -> None:
    search = {**SEARCH, "space": {"compile.optimizer.learning_rate": {"choice": [0.001, 0.05]}},
              "method": "grid", "trials": None}  # fmt: skip
    finished = run(context, iris_spec(folds=2), search)
    assert finished["state"] == "succeeded", finished["error"]
    means = {t["index"]: t["folds"]["val_loss"]["mean"] for t in finished["trials"]}
    assert finished["best"]["index"] == min(means, key=means.__getitem__)
    assert all(t["metrics"]["val_loss"] == pytest.approx(means[t["index"]])
               for t in finished["trials"])  # fmt: skip
    # Only the winner is refit, once the folds have ranked: its epochs follow.
    epochs = iris_spec()["fit"]["epochs"]
    assert finished["history"]["group"] == [0] * epochs + ["refit"] * epochs


def test_a_search_handed_back_by_a_stopping_worker_goes_on_from_its_checkpoint(
    context: WorkerContext,
) -> None:
    """SIGTERM mid-search: the group's checkpoint is kept, and the next delivery
    goes on from it and ends where an uninterrupted search ends."""
    search = {
        "method": "grid",
        "space": {"compile.optimizer.learning_rate": {"choice": [0.01, 0.05]}},
    }
    spec = iris_spec(validation_split=0.25, shuffle=True)
    whole = run(context, spec, search)
    requeued: list[JobRecord] = []
    stopping = dataclasses.replace(context, stopping=threading.Event(), requeue=requeued.append)
    stopping.stopping.set()  # asked to stop before the first epoch ends: that epoch is kept
    stored = search_json(Search.model_validate(search))
    extra = {"search": stored, **job_trials(spec, stored).record()}
    job = context.jobs.create("train", "iris", whole["dataset"], spec=spec, extra=extra)
    handed_back = run_training_job(job["id"], stopping)
    assert handed_back["state"] == "queued" and [j["id"] for j in requeued] == [job["id"]]
    assert context.checkpoints.load(job["id"]).epoch == 1  # type: ignore[union-attr]

    finished = run_training_job(job["id"], context)
    assert finished["state"] == "succeeded", finished["error"]
    assert finished["resumed_from_epoch"] == 1
    assert finished["history"]["epoch"] == [1, 2, 3, 4]
    for index in range(2):
        curve = f"{index}:val_loss"
        np.testing.assert_allclose(finished["history"][curve], whole["history"][curve], atol=1e-6)
    assert context.checkpoints.load(job["id"]) is None  # dropped once it succeeded
