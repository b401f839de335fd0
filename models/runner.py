"""Running one job, training or batch prediction: the worker's tasks call
this and nothing more.

State moves queued -> running -> succeeded | failed | cancelled in the job
store; progress is written after every epoch; a succeeded training job has
published its model version first, so `result.version` always exists when seen.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from models.datasets import DatasetStore
from models.errors import FitserveError, JobCancelled
from models.jobs import JobStore, utc_now
from models.predictor import load_version
from models.results import ResultStore
from models.spec import ModelSpec
from models.store import ModelStore
from models.training import TrainingResult, train

log = logging.getLogger(__name__)

# How often a running job looks for a cancel request: often enough to stop
# within a fraction of a second, rarely enough to cost nothing per batch.
CANCEL_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class WorkerContext:
    jobs: JobStore
    datasets: DatasetStore
    models: ModelStore
    results: ResultStore
    worker: str
    device: str
    backend: str


class JobProgress:
    """Writes each epoch's progress and metrics into the job record."""

    def __init__(self, jobs: JobStore, job_id: str, epochs: int) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.epochs = epochs
        self.history: dict[str, list[float]] = {}
        self.started = time.monotonic()
        self._next_poll = 0.0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)
        elapsed = time.monotonic() - self.started
        progress = {
            "epoch": epoch,
            "epochs": self.epochs,
            "fraction": round(epoch / self.epochs, 4),
            "eta_s": round(elapsed / epoch * (self.epochs - epoch), 2),
        }
        self.jobs.update(self.job_id, progress=progress, metrics=logs, history=self.history)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now < self._next_poll:
            return False
        self._next_poll = now + CANCEL_POLL_SECONDS
        return self.jobs.cancel_requested(self.job_id)


def run_training_job(job_id: str, context: WorkerContext) -> dict[str, Any]:
    """Train, publish and finish job `job_id`; returns the final job record."""
    jobs = context.jobs
    job = _start(job_id, context)
    if job is None:
        return jobs.get(job_id)
    try:
        spec = ModelSpec.model_validate(job["spec"])
        dataset = context.datasets.load(job["dataset"])
        result = train(spec, dataset, JobProgress(jobs, job_id, spec.fit.epochs))
        if jobs.cancel_requested(job_id):
            raise JobCancelled("The job was cancelled before its model was published.")
        version = _publish(job, spec, result, context)
    except Exception as exc:
        return _stop(job_id, context, exc)
    return _succeed(job_id, context, {
        "model": job["model"], "version": version, "metrics": result.metrics,
    })  # fmt: skip


def run_prediction_job(job_id: str, context: WorkerContext) -> dict[str, Any]:
    """Predict every row of a stored dataset with one model version; the outputs
    and decoded labels go to the result store."""
    job = _start(job_id, context)
    if job is None:
        return context.jobs.get(job_id)
    try:
        dataset = context.datasets.load(job["dataset"])
        loaded = load_version(context.models, job["model"], job["version"])
        outputs = loaded.predict(dataset.x)
        context.results.save(job_id, outputs, loaded.encoding.decode(outputs))
    except Exception as exc:
        return _stop(job_id, context, exc)
    context.jobs.update(job_id, progress={**job["progress"], "fraction": 1.0, "eta_s": 0.0})
    return _succeed(job_id, context, {
        "model": job["model"], "version": job["version"], "rows": len(outputs),
    })  # fmt: skip


def _start(job_id: str, context: WorkerContext) -> dict[str, Any] | None:
    """Queued -> running; None when the job was cancelled or already taken."""
    previous = context.jobs.transition(
        job_id, "running", ("queued",),
        started_at=utc_now(), worker=context.worker, device=context.device,
    )  # fmt: skip
    if previous is None:
        log.info("job %s is no longer queued; not starting it", job_id)
        return None
    context.jobs.count_attempt(job_id)
    return context.jobs.get(job_id)


def _stop(job_id: str, context: WorkerContext, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, JobCancelled):
        context.jobs.transition(job_id, "cancelled", ("running",), finished_at=utc_now())
        log.info("job %s cancelled", job_id)
    else:  # a failed job records why; the worker lives on
        log.error("job %s failed", job_id, exc_info=exc)
        context.jobs.transition(
            job_id, "failed", ("running",), finished_at=utc_now(), error=_describe(exc)
        )
    return context.jobs.get(job_id)


def _succeed(job_id: str, context: WorkerContext, result: dict[str, Any]) -> dict[str, Any]:
    context.jobs.transition(job_id, "succeeded", ("running",), finished_at=utc_now(),
                            result=result)  # fmt: skip
    return context.jobs.get(job_id)


def _publish(
    job: dict[str, Any], spec: ModelSpec, result: TrainingResult, context: WorkerContext
) -> int:
    import keras

    metadata = {
        "spec": job["spec"],
        "task": spec.task,
        "input_shape": spec.input_shape,
        "outputs": spec.outputs,
        "classes": result.encoding.classes,
        "metrics": result.metrics,
        "history": result.history,
        "epochs_run": result.epochs_run,
        "dataset": job["dataset"],
        "job": job["id"],
        "device": context.device,
        "worker": context.worker,
        "backend": context.backend,
        "keras_version": keras.__version__,
        "timings": {
            "fit_s": round(result.fit_seconds, 3),
            "samples_per_s": round(result.samples * result.epochs_run / result.fit_seconds, 1),
        },
        "created_at": utc_now(),
    }
    return context.models.publish(job["model"], result.model.save, metadata)


def _describe(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, FitserveError):
        return {"code": exc.code, "message": exc.message}
    return {
        "code": "training_failed",
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exception_only(exc)[-1].strip(),
    }
