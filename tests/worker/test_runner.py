"""The job runner in process: real Redis, real folders under tmp_path, real
Keras training of a tiny network on a few rows. What each delivery of a job
does, and what it must leave alone."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import redis

from models.errors import NotFound
from models.jobs.store import JobStore
from models.records import JobRecord
from models.serving.predictor import load_version
from models.settings import Jobs, Settings
from models.storage.checkpoint_files import Checkpoint
from models.training.spec import ModelSpec
from tests.conftest import forget_redis_state, isolated_settings
from tests.worker.conftest import wait_until_orphaned
from worker.context import WorkerContext
from worker.runner import run_prediction_job, run_training_job

MODEL = "tiny"
ROWS = 24
X = np.random.default_rng(7).normal(size=(ROWS, 3)).round(3)
LABELS = ["yes" if row[0] + row[1] > 0 else "no" for row in X]
LONG_LEASE_S = 30.0


def spec(epochs: int = 2, input_width: int = 3) -> dict[str, Any]:
    """The spec as the API stores it: validated, with every default filled in."""
    return ModelSpec.model_validate(
        {
            "input_shape": [input_width],
            "layers": [
                {"type": "dense", "units": 4, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"},
            ],
            "compile": {
                "loss": "binary_crossentropy",
                "optimizer": "adam",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": epochs, "batch_size": 8},
            "seed": 3,
        }  # fmt: skip
    ).model_dump(mode="json")


def worker_context(settings: Settings, client: redis.Redis) -> WorkerContext:
    return WorkerContext.from_settings(
        settings, client, "test-worker", "cpu", keras.backend.backend()
    )


def store_dataset(context: WorkerContext) -> str:
    body = json.dumps({"x": X.tolist(), "y": LABELS}).encode()
    record, _ = context.datasets.save(body, "application/json")
    return record["id"]


@pytest.fixture
def context(settings: Settings, redis_client: redis.Redis) -> WorkerContext:
    return worker_context(settings, redis_client)


@pytest.fixture
def dataset_id(context: WorkerContext) -> str:
    return store_dataset(context)


@dataclasses.dataclass(frozen=True)
class Trained:
    context: WorkerContext
    job_id: str
    finished: JobRecord


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """One job trained through the runner, in folders and Redis keys of its
    own: the normal path is checked on it, and its model serves the prediction
    test (training is the slow part of these tests)."""
    settings = isolated_settings(tmp_path_factory.mktemp("trained") / "var")
    client = redis.Redis.from_url(settings.redis_url)
    try:
        context = worker_context(settings, client)
        job_id = submit(context, store_dataset(context))
        yield Trained(context, job_id, run_training_job(job_id, context))
    finally:
        client.close()
        forget_redis_state(settings)


def submit(context: WorkerContext, dataset_id: str, **options: Any) -> str:
    return context.jobs.create("train", MODEL, dataset_id, spec=spec(**options))["id"]


def taken_by_a_dead_worker(jobs: JobStore, job_id: str) -> None:
    """The job was delivered once, and its worker died: its lease has lapsed."""
    assert jobs.claim(job_id, "dead-worker", "cpu", 0.05, max_attempts=3).owned
    wait_until_orphaned(jobs, job_id)


def a_checkpoint() -> Checkpoint:
    """A checkpoint file as a dead worker leaves one (its values do not matter
    to the paths that only keep or delete it)."""
    return Checkpoint(epoch=1, history={"loss": [0.7]}, trainable=[np.zeros(3, "float32")],
                      non_trainable=[], optimizer=[])  # fmt: skip


def test_a_queued_job_trains_publishes_version_1_and_succeeds(trained: Trained) -> None:
    """The normal path: a succeeded job's `result.version` is published and
    names this job, and the job leaves no lease or checkpoint behind."""
    context, job_id, finished = trained.context, trained.job_id, trained.finished

    assert finished["state"] == "succeeded", finished["error"]
    result = finished["result"]
    assert result is not None and result["model"] == MODEL and result["version"] == 1
    assert context.models.versions(MODEL) == [1]
    metadata = context.models.metadata(MODEL, 1)
    assert metadata["job"] == job_id and metadata["worker"] == "test-worker"
    assert metadata["classes"] == ["no", "yes"] and metadata["epochs_run"] == 2
    assert result["metrics"] == metadata["metrics"]
    assert set(result["metrics"]) == {"loss", "accuracy"}

    assert finished["attempts"] == 1 and finished["worker"] == "test-worker"
    assert finished["device"] == "cpu" and finished["finished_at"] is not None
    assert finished["progress"]["epoch"] == 2 and finished["progress"]["fraction"] == 1.0
    assert len(finished["history"]["loss"]) == 2
    assert finished["restarts"] == []
    assert context.jobs.training_totals()["cpu"]["samples"] == ROWS * 2
    assert context.checkpoints.job_ids() == []  # the last epoch's was saved, then dropped
    assert job_id not in context.jobs.orphans()  # not running, lease released
    assert context.jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, 3).outcome == "finished"


def test_a_duplicate_delivery_of_a_held_job_does_nothing(
    context: WorkerContext, dataset_id: str
) -> None:
    """A second message for a job another live worker runs must neither train
    nor touch the record, nor release the other worker's lease."""
    job_id = submit(context, dataset_id)
    assert context.jobs.claim(job_id, "first-worker", "cpu", LONG_LEASE_S, 3).owned

    record = run_training_job(job_id, context)

    assert record["state"] == "running" and record["worker"] == "first-worker"
    assert record["attempts"] == 1 and record["progress"]["epoch"] == 0
    assert context.models.versions(MODEL) == []
    assert context.jobs.claim(job_id, "w3", "cpu", LONG_LEASE_S, 3).outcome == "busy"


def test_a_job_cancelled_before_it_starts_is_not_run(
    context: WorkerContext, dataset_id: str
) -> None:
    """Its message is still on the queue; its delivery must find it cancelled."""
    job_id = submit(context, dataset_id)
    assert context.jobs.request_cancel(job_id)["state"] == "cancelled"

    record = run_training_job(job_id, context)

    assert record["state"] == "cancelled"
    assert record["attempts"] == 0 and record["started_at"] is None
    assert context.models.versions(MODEL) == []


def test_a_job_cancelled_while_its_worker_was_gone_ends_and_drops_its_checkpoint(
    context: WorkerContext, dataset_id: str
) -> None:
    """The cancel asked while the dead worker still looked alive is honoured by
    the redelivery, which must not resume the job, and cleans up after it."""
    job_id = submit(context, dataset_id)
    assert context.jobs.claim(job_id, "dead-worker", "cpu", 1.0, max_attempts=3).owned
    context.checkpoints.save(job_id, a_checkpoint())
    assert context.jobs.request_cancel(job_id)["state"] == "running"  # the lease still held
    wait_until_orphaned(context.jobs, job_id)

    record = run_training_job(job_id, context)

    assert record["state"] == "cancelled" and record["attempts"] == 1
    assert context.checkpoints.job_ids() == []
    assert context.models.versions(MODEL) == []


def test_a_job_out_of_deliveries_fails_without_running(
    context: WorkerContext, dataset_id: str
) -> None:
    """A job whose worker died on each delivery is given up, not run once more."""
    one_try = dataclasses.replace(context, policy=Jobs(lease_s=LONG_LEASE_S, max_attempts=1))
    job_id = submit(context, dataset_id)
    taken_by_a_dead_worker(context.jobs, job_id)
    context.checkpoints.save(job_id, a_checkpoint())

    record = run_training_job(job_id, one_try)

    assert record["state"] == "failed" and record["attempts"] == 1
    assert record["error"] is not None and record["error"]["code"] == "worker_lost"
    assert context.checkpoints.job_ids() == []
    assert context.models.versions(MODEL) == []


def test_a_spec_the_dataset_does_not_fit_fails_the_job_with_why(
    context: WorkerContext, dataset_id: str
) -> None:
    """An error inside training fails this job, with a code and a message that
    say what went wrong, and the worker goes on (nothing raised here)."""
    job_id = context.jobs.create("train", MODEL, dataset_id, spec=spec(input_width=5))["id"]

    record = run_training_job(job_id, context)

    assert record["state"] == "failed" and record["finished_at"] is not None
    error = record["error"]
    assert error is not None and error["code"] == "training_failed"
    assert error["message"].startswith("ValueError: ")
    assert "expected axis -1 of input shape to have value 5" in error["message"]
    assert context.models.versions(MODEL) == []
    assert context.checkpoints.job_ids() == []
    assert context.jobs.orphans() == []
    assert context.jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, 3).outcome == "finished"


def test_a_missing_dataset_fails_the_job_with_its_own_error_code(context: WorkerContext) -> None:
    """A FitserveError keeps its code and message (here: the dataset was
    deleted after the job was submitted)."""
    gone = "0123456789abcdef01234567"
    job_id = context.jobs.create("train", MODEL, gone, spec=spec())["id"]

    record = run_training_job(job_id, context)

    assert record["state"] == "failed"
    error = record["error"]
    assert error is not None and error["code"] == "not_found"
    assert gone in error["message"] and "traceback" not in error


class TakenOverAtFirstRenewal(JobStore):
    """The job store of a worker that stalled past its lease: when its lease
    thread next renews, another worker has taken the job over (for real, in
    Redis), so the renewal finds another token on the lease."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(client, prefix)
        self.taken_over = threading.Event()

    def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        if not self.taken_over.is_set():
            self.release(job_id, token)  # as if it had lapsed
            assert self.claim(job_id, "new-owner", "cpu", LONG_LEASE_S, 3).outcome == "resumed"
            self.taken_over.set()
        return super().renew(job_id, token, lease_s)


def test_a_lease_lost_mid_training_publishes_nothing_and_leaves_the_job_alone(
    context: WorkerContext, dataset_id: str, settings: Settings, redis_client: redis.Redis
) -> None:
    """Two workers must never both publish a job, nor the old one end the new
    one's run: the worker that lost its lease stops and writes nothing more."""
    store = TakenOverAtFirstRenewal(redis_client, settings.redis_prefix)
    # Renewed every 0.05 s: long before this job's training could end.
    stalled = dataclasses.replace(context, jobs=store, policy=Jobs(lease_s=0.2))
    job_id = submit(context, dataset_id, epochs=20)

    record = run_training_job(job_id, stalled)

    assert store.taken_over.is_set()
    assert record["state"] == "running" and record["worker"] == "new-owner"
    assert record["attempts"] == 2 and record["result"] is None
    assert context.models.versions(MODEL) == []
    assert context.jobs.training_totals() == {}
    # It released its own lease on the way out, not the new owner's.
    assert context.jobs.claim(job_id, "w3", "cpu", LONG_LEASE_S, 3).outcome == "busy"


def test_a_stopping_worker_hands_the_job_back_to_its_queue(
    context: WorkerContext, dataset_id: str
) -> None:
    """On SIGTERM the running job goes back to `queued` and to its queue, its
    checkpoint kept, so the next delivery resumes it instead of starting over
    (the resumed run itself: tests/e2e/test_faults.py)."""
    requeued: list[JobRecord] = []
    stopping = dataclasses.replace(context, stopping=threading.Event(), requeue=requeued.append)
    stopping.stopping.set()  # asked to stop before the first epoch ends
    job_id = submit(context, dataset_id, epochs=3)

    record = run_training_job(job_id, stopping)

    assert record["state"] == "queued" and record["worker"] is None
    assert [job["id"] for job in requeued] == [job_id]
    assert context.models.versions(MODEL) == []
    kept = context.checkpoints.load(job_id)
    assert kept is not None and kept.epoch == 1  # saved at once when stopping
    assert context.jobs.orphans() == []  # not left `running` for the sweeper
    assert context.jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, 3).outcome == "started"


def test_a_job_handed_back_as_often_as_it_may_be_delivered_still_runs(
    context: WorkerContext, dataset_id: str
) -> None:
    """Workers restarted one after another (SIGTERM) hand the job back each
    time: that must not use up the deliveries the job has for workers that
    die, or its next worker's death would fail it at once."""
    two_tries = dataclasses.replace(context, policy=Jobs(lease_s=LONG_LEASE_S, max_attempts=2))
    requeued: list[JobRecord] = []
    stopping = dataclasses.replace(two_tries, stopping=threading.Event(), requeue=requeued.append)
    stopping.stopping.set()
    job_id = submit(context, dataset_id, epochs=3)
    for _ in range(2):
        assert run_training_job(job_id, stopping)["state"] == "queued"
    assert len(requeued) == 2
    taken_by_a_dead_worker(context.jobs, job_id)  # and then a worker dies running it

    record = run_training_job(job_id, two_tries)

    assert record["state"] == "succeeded", record["error"]
    assert record["attempts"] == 4
    assert len(record["history"]["loss"]) == 3


def test_a_retried_job_reuses_the_version_it_already_published(
    context: WorkerContext, dataset_id: str
) -> None:
    """A worker that died between publishing and recording success must not
    cause a second version: the retry finds the one named after its job."""
    job_id = submit(context, dataset_id)
    taken_by_a_dead_worker(context.jobs, job_id)

    def write(path: Path) -> None:
        path.write_bytes(b"a model file")

    context.models.publish(MODEL, write, {"job": "f" * 32, "metrics": {"loss": 0.5}})
    context.models.publish(MODEL, write, {"job": job_id, "metrics": {"loss": 0.25}})
    context.checkpoints.save(job_id, a_checkpoint())

    record = run_training_job(job_id, context)

    assert record["state"] == "succeeded", record["error"]
    assert record["attempts"] == 2
    assert record["result"] == {"model": MODEL, "version": 2, "metrics": {"loss": 0.25}}
    assert context.models.versions(MODEL) == [1, 2]  # nothing new published
    assert record["history"] == {}  # and nothing trained
    assert context.jobs.training_totals() == {}
    assert context.checkpoints.job_ids() == []


def test_a_prediction_job_writes_its_outputs_to_the_result_store(
    trained: Trained, context: WorkerContext, dataset_id: str
) -> None:
    """Batch prediction with a published version: every row's output and
    decoded label is stored, and the job's result says how many rows."""
    # Version 1 of MODEL, from the trained context's folder store into this one's.
    shutil.copytree(
        trained.context.models.blobs.url + "/models", context.models.blobs.url + "/models"
    )
    job_id = context.jobs.create("predict", MODEL, dataset_id, version=1)["id"]

    record = run_prediction_job(job_id, context)

    assert record["state"] == "succeeded", record["error"]
    assert record["result"] == {"model": MODEL, "version": 1, "rows": ROWS}
    assert record["progress"]["fraction"] == 1.0
    outputs, labels = context.results.load(job_id)
    assert outputs.shape == (ROWS, 1)
    expected = load_version(context.models, MODEL, 1).predict(X.astype("float32"))
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    assert labels == ["yes" if output >= 0.5 else "no" for output in outputs[:, 0]]
    assert context.jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, 3).outcome == "finished"


def test_a_prediction_job_for_a_missing_version_fails(
    context: WorkerContext, dataset_id: str
) -> None:
    """The version was deleted after the job was submitted: the job fails, with no result."""
    job_id = context.jobs.create("predict", MODEL, dataset_id, version=1)["id"]

    record = run_prediction_job(job_id, context)

    assert record["state"] == "failed" and record["result"] is None
    assert record["error"] is not None and record["error"]["code"] == "not_found"
    with pytest.raises(NotFound, match="no stored result"):
        context.results.load(job_id)
