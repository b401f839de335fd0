"""A job of many trials: a hyperparameter search (`search` in the job), k-fold
validation (`fit.folds` in the spec), or both. worker.runner hands it here once
it holds its claim, and publishes what `run_trials` returns.

The trials are the job's spec with each trial's drawn values written in
(models.training.search.space.trial_specs). One group trains in this job
(worker.group_jobs); several are sent as group jobs in one Celery group, and
the search trains those nobody has taken yet, waits for the rest, and gathers
their epochs and trials into its record. The best trial by the ranking metric
is published: as trained, or, with folds, refit on every row (beside the folds
for a k-fold job of one trial; after the ranking, as group "refit", for a
search). Its metadata names its parameters, the search and the job.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from models.datasets import Dataset
from models.errors import Conflict, JobCancelled, SearchFailed
from models.records import JobRecord
from models.training.class_labels import LabelEncoding
from models.training.fit import TrainingResult, train
from models.training.search.ranking import better
from models.training.search.trial_plan import TrialPlan, program_groups, search_json
from models.training.spec import ModelSpec
from worker.context import WorkerContext
from worker.group_jobs import SEARCH_BLOBS, GroupResume, Ranked, train_here
from worker.leases import LeaseKeeper
from worker.progress import JobProgress

# How often a coordinating search looks at the group jobs other workers hold.
POLL_SECONDS = 0.25
FINAL = ("succeeded", "failed", "cancelled")
# Runs one job on this worker (worker.runner.run_training_job), passed down by
# the runner: a search trains its group jobs nobody has taken yet itself.
RunJob = Callable[[str, WorkerContext], object]


def group_job_id(search_id: str, group: int) -> str:
    """The id of a search's group job: the same on every delivery of the search."""
    return uuid.uuid5(uuid.UUID(search_id), f"group-{group}").hex


def run_trials(
    job: JobRecord, plan: TrialPlan, dataset: Dataset, progress: JobProgress,
    lease: LeaseKeeper, context: WorkerContext, resume: GroupResume | None = None, *,
    run_job: RunJob,
) -> tuple[TrainingResult, dict[str, Any]]:  # fmt: skip
    """Train every trial of `job` (`plan`, from `job_trials`), pick the best,
    and return it ready to publish (refit on every row with folds) with the
    metadata that says where it came from. `progress` counts `plan.epochs()`;
    `resume`: a one-group search's checkpoint (`resumed_group`); `run_job`
    trains a group job here that no other worker has taken."""
    groups = program_groups(plan.trials)
    trials_record = plan.record()["trials"]
    started = time.perf_counter()
    if len(groups) == 1:
        best = train_here(job, plan, groups[0], dataset, progress, trials_record, lease, context,
                          resume=resume)  # fmt: skip
    else:
        best = _spread(job, plan, groups, progress, trials_record, lease, context, run_job)
    search_seconds = time.perf_counter() - started
    if best is None:
        raise SearchFailed(
            f"No trial has a {plan.metric} to rank by: every one ended with NaN, was stopped "
            f"or failed. Received: {len(plan.trials)} trials"
        )
    by_index = {trial.index: trial for trial in plan.trials}
    winner = trials_record[best.index]
    summary = {name: winner[name] for name in ("index", "params", "metrics", "folds")
               if name in winner}  # fmt: skip
    context.jobs.update(job["id"], token=lease.token, best=summary)
    spec = by_index[best.index].spec
    if plan.folds and not plan.refits_beside_folds:
        progress.epochs = len(progress.logs) + spec.fit.epochs
        published = _refit(spec, dataset, progress)
    elif best.group is not None:  # with folds beside them, the refit
        published = best.group.result(best.group.trials.index(by_index[best.index]))
    else:
        assert best.stored is not None  # a group job's winner
        published = _stored_result(best, spec, dataset, winner, progress.logs, context)
    metadata: dict[str, Any] = {"spec": spec.model_dump(mode="json")}  # the winner's own
    if plan.search is not None:
        metadata["search"] = {
            "job": job["id"],
            "trial": best.index,
            "params": winner["params"],
            "ranking": {"metric": plan.metric, "mode": plan.mode},
            "trials": len(plan.trials),
            "method": plan.search.method,
            "space": search_json(plan.search)["space"],
            "seconds": round(search_seconds, 3),
        }
    if "folds" in winner:
        metadata["folds"] = winner["folds"]
    return published, metadata


def forget_search_models(search_id: str, context: WorkerContext) -> None:
    """Drop what the search's group jobs left in the store for it."""
    blobs = context.models.blobs
    for key in list(blobs.keys(f"{SEARCH_BLOBS}/{search_id}/")):
        blobs.delete(key)


def _spread(
    job: JobRecord, plan: TrialPlan, groups: list[list[int]], progress: JobProgress,
    trials_record: list[dict[str, Any]], lease: LeaseKeeper, context: WorkerContext,
    run_job: RunJob,
) -> Ranked | None:  # fmt: skip
    """Coordinate the search's group jobs: create and send the missing ones,
    train the ones still queued here, wait for the rest; then fold their
    trials and epochs into the search's record. Returns the best trial."""
    ids = _group_jobs(job, plan, groups, context)
    context.jobs.update(job["id"], token=lease.token, groups=ids)
    shown: dict[str, Any] = {}
    while True:
        # Their state and trials only, in one round trip: not every group's history.
        found = context.jobs.fields_of(ids, "state", "trials", "progress")
        children = [{"id": child_id, **fields} for child_id, fields in zip(ids, found, strict=True)]
        for child in children:
            for entry in child["trials"] or []:
                trials_record[entry["index"]] = entry
        latest = {"trials": trials_record, "progress": _spread_progress(children, progress.epochs)}
        if latest != shown:  # a search of many trials has a large record: written on change
            context.jobs.update(job["id"], token=lease.token, **latest)
            shown = json.loads(json.dumps(latest))
        if all(child["state"] in FINAL for child in children):
            break
        if progress.should_stop():  # the search cancelled: so are its groups
            for child in children:
                if child["state"] not in FINAL:
                    with suppress(Conflict):  # it finished meanwhile
                        context.jobs.request_cancel(child["id"])
            time.sleep(POLL_SECONDS)
            continue
        # Queued, or held by a worker that died: trained here (a claim takes over a
        # lapsed lease), as a lone worker busy here would never take their messages.
        waiting = [child for child in children if child["state"] == "queued" or (
            child["state"] == "running" and not context.jobs.leased(child["id"]))]  # fmt: skip
        if waiting:
            run_job(waiting[0]["id"], context)  # or finds another worker took it
        else:
            time.sleep(POLL_SECONDS)
    if context.jobs.cancel_requested(job["id"]):
        raise JobCancelled("The search was cancelled while its groups trained.")
    return _gather(plan, ids, trials_record, progress, context)


def _group_jobs(
    job: JobRecord, plan: TrialPlan, groups: list[list[int]], context: WorkerContext
) -> list[str]:
    """The search's group jobs, created and sent (as one Celery group) unless
    an earlier delivery of the search did."""
    record = plan.record()
    ids, created = [], []
    for group, indices in enumerate(groups):
        child_id = group_job_id(job["id"], group)
        ids.append(child_id)
        if context.jobs.exists(child_id):
            continue
        entries = [record["trials"][index] for index in indices]
        created.append(context.jobs.create(
            "train", job["model"], job["dataset"], spec=job["spec"], job_id=child_id,
            extra={"parent": job["id"], "group": group, "search": job.get("search"),
                   "ranking": record["ranking"], "trials": entries, "best": None},
        ))  # fmt: skip
    if created and context.send_group is not None:
        context.send_group(created)
    return ids


def _spread_progress(children: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    done = sum(child["progress"]["epoch"] or 0 for child in children)
    return {"epoch": done, "epochs": epochs, "fraction": round(done / max(epochs, 1), 4),
            "eta_s": None}  # fmt: skip


def _gather(
    plan: TrialPlan, ids: list[str], trials_record: list[dict[str, Any]],
    progress: JobProgress, context: WorkerContext,
) -> Ranked | None:  # fmt: skip
    """Every group job's epochs into the search's history, in group order;
    failed groups' trials marked failed; the best of the groups' bests."""
    best: Ranked | None = None
    for child_id, child in zip(ids, context.jobs.fields_of(ids, "state", "trials", "result"),
                               strict=True):  # fmt: skip
        for entry in context.jobs.epoch_logs(child_id):  # the entries it appended
            progress.on_epoch_end(len(progress.logs) + 1, entry)
        if child["state"] != "succeeded":
            for entry in child["trials"] or []:
                trials_record[entry["index"]]["state"] = "failed"
            continue
        found = (child["result"] or {}).get("best")
        if found is not None and better(plan.mode, found["value"], best.value if best else None):
            best = Ranked(found["index"], found["value"], stored=found.get("model"),
                           fit_seconds=found.get("fit_s", 0.0))  # fmt: skip
    return best


def _stored_result(
    best: Ranked, spec: ModelSpec, dataset: Dataset, winner: dict[str, Any],
    entries: list[dict[str, Any]], context: WorkerContext,
) -> TrainingResult:  # fmt: skip
    """A group job's best model, from the store, as a TrainingResult to publish;
    its curves from the search's history `entries`."""
    import keras

    assert best.stored is not None
    with tempfile.TemporaryDirectory(prefix="fitserve-winner-") as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(context.models.blobs.get(best.stored))
        model = keras.saving.load_model(path)
    prefix = f"{best.index}:"
    history: dict[str, list[float]] = {}
    for entry in entries:
        for name, value in entry.items():
            if name.startswith(prefix) and name.count(":") == 1:
                history.setdefault(name.removeprefix(prefix), []).append(value)
    return TrainingResult(
        model=model, encoding=LabelEncoding.for_spec(spec, dataset.y), history=history,
        metrics=dict(winner["metrics"]), epochs_run=int(winner["epochs"]),
        fit_seconds=best.fit_seconds, samples=int(dataset.x.shape[0]),
    )  # fmt: skip


def _refit(spec: ModelSpec, dataset: Dataset, progress: JobProgress) -> TrainingResult:
    """The winning spec trained on every row: what k-fold validation publishes."""
    spec = spec.model_copy(update={"fit": spec.fit.model_copy(update={"folds": None})})
    # The folds' training cleared Keras' session with a garbage collection moments ago.
    return train(spec, dataset, _RefitEpochs(progress), free_memory=False)


class _RefitEpochs:
    """The refit's epochs in the job's history, as group "refit"."""

    def __init__(self, progress: JobProgress) -> None:
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        entry = {"epoch": epoch, "group": "refit", **{f"refit:{k}": v for k, v in logs.items()}}
        self.progress.on_epoch_end(len(self.progress.logs) + 1, entry)  # type: ignore[arg-type]

    def should_stop(self) -> bool:
        return self.progress.should_stop()
