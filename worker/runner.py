"""Running one job, training or batch prediction: the worker's tasks call this
and nothing more. State moves queued -> running -> succeeded | failed |
cancelled; a succeeded training job has published its version first, so
`result.version` always exists when seen. A search or k-fold job's trials are
worker.search_coordinator's, a search's group job worker.group_jobs'.

Each delivery first claims the job (models.jobs.store): a duplicate finds it
taken and stops. The lease is kept alive while the job runs; if the worker
dies, the job is delivered again (worker.sweeper), resumes from its last
checkpoint, and is published once (a version it already published is reused).
Every write carries the claim's token and is refused (LeaseLost) once another
delivery has claimed the job: a stalled worker that wakes up changes nothing.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from models.errors import FitserveError, JobCancelled, LeaseLost, WorkerStopping
from models.jobs.store import Claim, utc_now
from models.records import JobError, JobRecord
from models.serving.model_loading import load_version
from models.serving.serving_record import serving_record
from models.training.checkpoints import Checkpointer
from models.training.fit import TrainingResult, train
from models.training.search.trial_plan import is_multi_trial, job_trials
from models.training.spec import ModelSpec
from worker.context import WorkerContext
from worker.group_jobs import resumed_group, run_group_job
from worker.leases import LeaseKeeper
from worker.progress import JobProgress, record_restart
from worker.search_coordinator import forget_search_models, run_trials

log = logging.getLogger(__name__)


def run_training_job(job_id: str, context: WorkerContext) -> JobRecord:
    """Train, publish and finish job `job_id`; returns the final job record."""
    with _owned(job_id, context) as lease:
        if lease is None:
            return context.jobs.get(job_id)
        try:
            return _run_training(context.jobs.get(job_id), lease, context)
        except LeaseLost:
            return _lost(job_id, context)


def _run_training(job: JobRecord, lease: LeaseKeeper, context: WorkerContext) -> JobRecord:
    job_id = job["id"]
    try:
        result = _already_published(job, context) or _train_and_publish(job, lease, context)
    except LeaseLost:
        raise
    except WorkerStopping:
        return _hand_back(job, lease, context)
    except redis.RedisError as exc:
        # The job store is away, silent or refusing writes. The job stays running,
        # its checkpoint kept; once Redis is back its lease lapses and it is delivered again.
        log.error("job %s: Redis failed (%s); it will be delivered again", job_id, exc)
        raise
    except Exception as exc:
        return _forget_checkpoint(job_id, context, _stop(job_id, lease, context, exc))
    return _forget_checkpoint(job_id, context, _succeed(job_id, lease, context, result))


def _lost(job_id: str, context: WorkerContext) -> JobRecord:
    """The job as another delivery left it: this one's writes were refused."""
    log.warning("job %s: another delivery took it over; this one stops, changing nothing", job_id)
    return context.jobs.get(job_id)


def _forget_checkpoint(job_id: str, context: WorkerContext, finished: JobRecord) -> JobRecord:
    """Drop a finished job's checkpoint, after its state is recorded: the job
    is done without waiting on the store's round trip, and a checkpoint this
    leaves behind (the store away, the worker killed) the sweeper drops."""
    try:
        context.checkpoints.delete(job_id)
    except Exception:
        log.warning("job %s: its checkpoint could not be deleted yet", job_id, exc_info=True)
    return finished


def _hand_back(job: JobRecord, lease: LeaseKeeper, context: WorkerContext) -> JobRecord:
    """Queue the job again, its checkpoint kept, for another worker (or this
    one, restarted) to resume: a worker asked to stop does not sit on a long
    job. The delivery does not count against the job's `max_attempts`."""
    moved = context.jobs.transition(job["id"], "queued", ("running",), token=lease.token,
                                    worker=None)  # fmt: skip
    if moved and context.requeue is not None:
        context.requeue(job)
        log.warning("job %s handed back to its queue: the worker is stopping", job["id"])
    return context.jobs.get(job["id"])


def _already_published(job: JobRecord, context: WorkerContext) -> dict[str, Any] | None:
    """The result of a job whose worker published its version and died
    before it could say so. Only a job delivered before can have one: a first
    delivery does not read every version's metadata to find out."""
    if job["attempts"] <= 1:
        return None
    version = context.models.version_published_by(job["model"], job["id"])
    if version is None:
        return None
    metrics = context.models.metadata(job["model"], version)["metrics"]
    return {"model": job["model"], "version": version, "metrics": metrics}


def _train_and_publish(
    job: JobRecord, lease: LeaseKeeper, context: WorkerContext
) -> dict[str, Any]:
    if job.get("parent"):  # one group of a search: its search publishes
        return run_group_job(job, lease, context)
    if is_multi_trial(job):
        return _search_and_publish(job, lease, context)
    job_id = job["id"]
    spec = ModelSpec.model_validate(job["spec"])
    dataset = context.datasets.load(job["dataset"])
    # Only a job delivered before can have a checkpoint: a first delivery does
    # not ask the store (a round trip when the store is a bucket).
    resume = context.checkpoints.load(job_id) if job["attempts"] > 1 else None
    if job["attempts"] > 1:
        record_restart(job, lease, resume.epoch if resume else 0, context)
    progress = JobProgress(context.jobs, job_id, spec.fit.epochs, lease,
                           resume.history if resume else None, context.stopping)  # fmt: skip
    checkpointer = Checkpointer(context.checkpoints, job_id, force=context.stopping)
    try:
        result = train(spec, dataset, progress, resume=resume, checkpoints=checkpointer)
    finally:
        checkpointer.wait()  # none lands after the job ends (and its checkpoint is deleted)
    if context.jobs.cancel_requested(job_id):
        raise JobCancelled("The job was cancelled before its model was published.")
    lease.confirm()  # and again just before the version becomes visible
    version = _publish(job, spec, result, lease, context)
    context.jobs.record_training(
        context.device, result.samples * result.epochs_run, result.fit_seconds
    )
    return {"model": job["model"], "version": version, "metrics": result.metrics}


def _search_and_publish(
    job: JobRecord, lease: LeaseKeeper, context: WorkerContext
) -> dict[str, Any]:
    """A search or k-fold job (worker.search_coordinator): every trial, then the best published."""
    job_id = job["id"]
    plan = job_trials(job["spec"] or {}, job.get("search"))
    dataset = context.datasets.load(job["dataset"])
    # One group trains in this job, and goes on from its checkpoint; a search of
    # several finds its group jobs' progress in their records.
    resume = resumed_group(job, plan, lease, context)
    progress = JobProgress(context.jobs, job_id, plan.epochs(), lease,
                           resume.history if resume else None, context.stopping)  # fmt: skip
    try:
        result, provenance = run_trials(job, plan, dataset, progress, lease, context, resume,
                                        run_job=run_training_job)  # fmt: skip
    except (WorkerStopping, LeaseLost):
        raise  # the search goes on elsewhere: its groups' models are still needed
    except BaseException:
        forget_search_models(job_id, context)
        raise
    if context.jobs.cancel_requested(job_id):
        raise JobCancelled("The job was cancelled before its model was published.")
    lease.confirm()
    spec = ModelSpec.model_validate(job["spec"])
    version = _publish(job, spec, result, lease, context, provenance)
    forget_search_models(job_id, context)
    context.jobs.record_training(
        context.device, result.samples * result.epochs_run, result.fit_seconds
    )
    # The job's metrics are the winner's, not the last epoch's of its last group.
    context.jobs.update(job_id, token=lease.token, metrics=result.metrics)
    return {"model": job["model"], "version": version, "metrics": result.metrics}


def run_prediction_job(job_id: str, context: WorkerContext) -> JobRecord:
    """Predict every row of a stored dataset with one model version; the outputs
    and decoded labels go to the result store."""
    with _owned(job_id, context) as lease:
        if lease is None:
            return context.jobs.get(job_id)
        try:
            return _run_prediction(context.jobs.get(job_id), lease, context)
        except LeaseLost:
            return _lost(job_id, context)


def _run_prediction(job: JobRecord, lease: LeaseKeeper, context: WorkerContext) -> JobRecord:
    job_id = job["id"]
    try:
        if job["version"] is None:
            raise FitserveError(f"Prediction job {job_id} names no model version.")
        dataset = context.datasets.load(job["dataset"])
        loaded = load_version(context.models, job["model"], job["version"])
        outputs = loaded.predict(dataset.x)
        lease.confirm()
        context.results.save(job_id, outputs, loaded.encoding.decode(outputs))
    except LeaseLost:
        raise
    except redis.RedisError as exc:
        # Not the job's fault: it stays running, and is delivered again (as a training job).
        log.error("job %s: Redis failed (%s); it will be delivered again", job_id, exc)
        raise
    except Exception as exc:
        return _stop(job_id, lease, context, exc)
    context.jobs.update(job_id, token=lease.token,
                        progress={**job["progress"], "fraction": 1.0, "eta_s": 0.0})  # fmt: skip
    return _succeed(job_id, lease, context, {
        "model": job["model"], "version": job["version"], "rows": len(outputs),
    })  # fmt: skip


@contextmanager
def _owned(job_id: str, context: WorkerContext) -> Iterator[LeaseKeeper | None]:
    """Claim the job and keep its lease for the block; None when this
    delivery must leave it alone (taken, finished, cancelled, given up)."""
    claim = context.jobs.claim(
        job_id,
        context.worker,
        context.device,
        context.policy.lease_s,
        context.policy.max_attempts,
    )
    if not claim.owned:
        _log_unclaimed(job_id, claim)
        if claim.outcome in ("cancelled", "gave_up"):
            context.checkpoints.delete(job_id)
        yield None
        return
    log.info("job %s on %s (attempt %d)", claim.outcome, context.device, claim.attempts)
    with LeaseKeeper(context.jobs, job_id, claim, context.policy.lease_s) as lease:
        yield lease


def _log_unclaimed(job_id: str, claim: Claim) -> None:
    reasons = {
        "busy": "another worker holds it (a duplicate delivery)",
        "finished": "it has finished, or was cancelled before it started",
        "missing": "it no longer exists",
        "cancelled": "it was cancelled while its worker was gone",
        "gave_up": "its worker died on as many deliveries as it may have",
    }
    log.warning("job %s not run: %s", job_id, reasons.get(claim.outcome, claim.outcome))


def _stop(job_id: str, lease: LeaseKeeper, context: WorkerContext, exc: Exception) -> JobRecord:
    if isinstance(exc, JobCancelled):
        context.jobs.transition(job_id, "cancelled", ("running",), token=lease.token,
                                finished_at=utc_now())  # fmt: skip
        log.info("job %s cancelled", job_id)
    else:  # a failed job records why; the worker lives on
        log.error("job %s failed", job_id, exc_info=exc)
        context.jobs.transition(job_id, "failed", ("running",), token=lease.token,
                                finished_at=utc_now(), error=_describe(exc))  # fmt: skip
    return context.jobs.get(job_id)


def _succeed(
    job_id: str, lease: LeaseKeeper, context: WorkerContext, result: dict[str, Any]
) -> JobRecord:
    context.jobs.transition(job_id, "succeeded", ("running",), token=lease.token,
                            finished_at=utc_now(), result=result)  # fmt: skip
    log.info("job succeeded: %s version %s", result["model"], result["version"])
    return context.jobs.get(job_id)


def _publish(
    job: JobRecord, spec: ModelSpec, result: TrainingResult, lease: LeaseKeeper,
    context: WorkerContext, provenance: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """Publish `result` as the model's next version. `provenance`: what a
    search adds (the winner's params, the search, fold scores); the spec
    recorded is then the winner's own."""
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
        # What an API process checks its numpy forward pass against, without Keras.
        "serving": serving_record(result.model, spec.input_shape),
        "timings": {
            "fit_s": round(result.fit_seconds, 3),
            "samples_per_s": round(result.samples * result.epochs_run / result.fit_seconds, 1),
        },
        "created_at": utc_now(),
        **(provenance or {}),
    }
    return context.models.publish(job["model"], result.model.save, metadata, lease.confirm)


def _describe(exc: Exception) -> JobError:
    if isinstance(exc, FitserveError):
        return {"code": exc.code, "message": exc.message}
    return {
        "code": "training_failed",
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exception_only(exc)[-1].strip(),
    }
