"""Running a job of many trials: a hyperparameter search (`search` in the job),
k-fold validation (`fit.folds` in the spec), or both. worker.runner hands
such a job here once it holds its claim and lease; the rest (state moves,
publishing once, failures) is the runner's, as for any training job.

The trials are the job's spec with each trial's drawn values written in
(models.training.search.space.trial_specs: the API checked every one before the
job was queued; drawing again gives the same trials). Trials that can share
one program train side by side in it (models.training.fused.group_trainer), one
group after another on this worker. Each epoch of a group is one entry of the
job's history: its `epoch`, `group`, and each running trial's logs under
`"<trial>:<metric>"` (with folds, the fold mean there and each fold's under
`"<trial>:f<j>:<metric>"`), so a trial's curve is `history["3:val_loss"]` and
the events stream sends every trial's epoch as it ends. The record's `trials`
says where each trial stands after every group.

The best trial by the ranking metric is published: as trained, or, with
folds, refit on every row (the k fold models each saw only part of the
data). A k-fold job of one trial trains that refit beside its folds, in the
same program (TrialPlan.refits_beside_folds; its logs under
`"0:refit:<metric>"` in the same entries); a search refits its winner once
the folds have ranked the trials, in entries of group "refit". Its metadata
names its parameters, the search and the job.

Groups spread over the workers: a search of several groups makes one job
per group (a "group job": `parent` names the search, `group` its number;
ids derived from the search's, so a redelivered search finds them) and sends
them to its queue as one Celery group. The search's own worker coordinates
(the chord's part): it trains the group jobs nobody has taken yet itself,
waits for the ones other workers hold, then ranks every trial and publishes.
A group job is a job like any other: claimed once, its lease kept, sent
again by the sweeper if its worker dies, cancelled with its search. Its
group's best model waits in the store (`searches/<search>/`) for the
coordinator to publish it; the coordinator deletes them when it ends.

A group job (or a one-group search) redelivered after its worker died goes
on from its group's last checkpoint (models.training.fused.group_trainer saves
every member's values, who still runs, the curves), as any job does; a
search redelivered finds its finished groups done.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.datasets import Dataset
from models.errors import Conflict, JobCancelled, SearchFailed
from models.storage.checkpoint_files import Checkpoint
from models.training.checkpoints import Checkpointer
from models.training.class_labels import LabelEncoding
from models.training.fit import TrainingResult, train
from models.training.search.trial_plan import (
    TrialPlan,
    better,
    job_trials,
    program_groups,
    search_json,
)
from models.training.spec import ModelSpec

if TYPE_CHECKING:
    from models.records import JobRecord
    from models.training.fused.group_trainer import GroupResult
    from worker.leases import LeaseKeeper
    from worker.runner import JobProgress, WorkerContext

log = logging.getLogger(__name__)


# Where a group job leaves its best trial's model for the search to publish.
SEARCH_BLOBS = "searches"
# How often a coordinating search looks at the group jobs other workers hold.
POLL_SECONDS = 0.25
FINAL = ("succeeded", "failed", "cancelled")


def group_job_id(search_id: str, group: int) -> str:
    """The id of a search's group job: the same on every delivery of the search."""
    return uuid.uuid5(uuid.UUID(search_id), f"group-{group}").hex


class GroupEpochs:
    """A group's epochs into its job's history and progress (JobProgress
    writes them, fenced by the lease), one entry per epoch of the group. A
    group job also stops when its search is cancelled."""

    def __init__(
        self, progress: JobProgress, group: int, indices: Sequence[int],
        search_id: str | None = None,
    ) -> None:  # fmt: skip
        self.progress = progress
        self.group = group
        self.indices = list(indices)
        self.search_id = search_id
        self._next_poll = 0.0

    def on_epoch_end(self, epoch: int, logs: list[dict[str, float] | None]) -> None:
        entry: dict[str, float] = {"epoch": epoch, "group": self.group}
        for index, trial_logs in zip(self.indices, logs, strict=True):
            if trial_logs is not None:  # None: stopped at a halving rung
                entry.update({f"{index}:{name}": value for name, value in trial_logs.items()})
        self.progress.on_epoch_end(len(self.progress.logs) + 1, entry)

    def should_stop(self) -> bool:
        if self.progress.should_stop():
            return True
        if self.search_id is None or time.monotonic() < self._next_poll:
            return False
        self._next_poll = time.monotonic() + 1.0
        return self.progress.jobs.cancel_requested(self.search_id)


@dataclass
class _Ranked:
    """The best trial so far, and where its model is."""

    index: int
    value: float
    group: GroupResult | None = None  # trained here, in memory
    stored: str | None = None  # trained by a group job: its model's key in the store
    fit_seconds: float = 0.0  # a group job's training time


@dataclass(frozen=True)
class GroupResume:
    """A group's checkpoint, and the job's history up to it."""

    checkpoint: Checkpoint
    history: dict[str, list[Any]]  # the job's history entries, as JobProgress resumes them

    @property
    def epoch(self) -> int:
        return self.checkpoint.epoch


def resumed_group(
    job: JobRecord, plan: TrialPlan, lease: LeaseKeeper, context: WorkerContext
) -> GroupResume | None:
    """Where a job that trains one group (a group job, or a search of one
    group) goes on from, when delivered again: its checkpoint, if any (the
    restart recorded either way); None for a first delivery."""
    from worker.runner import record_restart

    if job["attempts"] <= 1:
        return None
    groups = program_groups(plan.trials)
    group = int(job.get("group") or 0)
    trains_one_group = len(groups) == 1 or job.get("parent") is not None
    checkpoint = context.checkpoints.load(job["id"]) if trains_one_group else None
    resume = None
    if checkpoint is not None:
        indices = groups[group]
        history: dict[str, list[Any]] = {"epoch": [], "group": []}
        for epoch in range(1, checkpoint.epoch + 1):
            history["epoch"].append(epoch)
            history["group"].append(group)
        for name, values in checkpoint.history.items():
            position, metric = name.split(":", 1)
            history[f"{indices[int(position)]}:{metric}"] = list(values)
        resume = GroupResume(checkpoint, history)
    record_restart(job, lease, resume.epoch if resume else 0, context)
    return resume


def run_trials(
    job: JobRecord, plan: TrialPlan, dataset: Dataset, progress: JobProgress,
    lease: LeaseKeeper, context: WorkerContext, resume: GroupResume | None = None,
) -> tuple[TrainingResult, dict[str, Any]]:  # fmt: skip
    """Train every trial of `job` (`plan`, from `job_trials`), pick the best,
    and return it ready to publish (refit on every row with folds) with the
    metadata that says where it came from. `progress` counts `plan.epochs()`;
    `resume`: a one-group search's checkpoint (`resumed_group`)."""
    groups = program_groups(plan.trials)
    trials_record = plan.record()["trials"]
    started = time.perf_counter()
    if len(groups) == 1:
        best = _train_here(job, plan, groups[0], dataset, progress, trials_record, lease, context,
                           resume=resume)  # fmt: skip
    else:
        best = _spread(job, plan, groups, progress, trials_record, lease, context)
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


def _train_here(
    job: JobRecord, plan: TrialPlan, indices: list[int], dataset: Dataset,
    progress: JobProgress, trials_record: list[dict[str, Any]], lease: LeaseKeeper,
    context: WorkerContext, group: int = 0, resume: GroupResume | None = None,
) -> _Ranked | None:  # fmt: skip
    """Train one group in this job (from `resume` on, checkpointed as any
    job); its trials' entries in `trials_record` (all the search's, by index)
    updated, and written (a group job's own only); the group's best, its
    model in memory."""
    search_id = job.get("parent")

    def write() -> None:
        shown = [trials_record[index] for index in indices] if search_id else trials_record
        context.jobs.update(job["id"], token=lease.token, trials=shown)

    for index in indices:
        trials_record[index]["state"] = "running"
    write()
    observer = GroupEpochs(progress, group, indices, search_id)
    checkpointer = Checkpointer(context.checkpoints, job["id"], force=context.stopping)
    try:
        result = _train_group(job, plan, indices, dataset, observer, resume, checkpointer)
    finally:
        checkpointer.wait()  # none lands after the job ends (and its checkpoint is deleted)
    best = _record_group(plan, indices, result, trials_record)
    write()
    return None if best is None else _Ranked(best[0], best[1], group=result)


def _train_group(
    job: JobRecord, plan: TrialPlan, indices: list[int], dataset: Dataset, observer: GroupEpochs,
    resume: GroupResume | None, checkpointer: Checkpointer,
) -> GroupResult:  # fmt: skip
    import keras

    from models.training.fused.group_trainer import train_group

    if keras.backend.backend() != "jax":
        raise SearchFailed(
            "Search and k-fold jobs train their trials side by side, which needs a worker "
            f"on the JAX backend; this one runs {keras.backend.backend()}. Received: a job "
            f"with {'search' if job.get('search') else 'fit.folds'}"
        )
    by_index = {trial.index: trial for trial in plan.trials}
    halving = plan.search.halving if plan.search else None
    ranking = (plan.metric, plan.mode)
    trials = [by_index[index] for index in indices]
    return train_group(
        trials, dataset, observer, folds=plan.folds, halving=halving, ranking=ranking,
        resume=resume.checkpoint if resume else None, checkpoints=checkpointer,
        refit=plan.refits_beside_folds,
    )  # fmt: skip


def _record_group(
    plan: TrialPlan, indices: list[int], result: GroupResult, trials_record: list[dict[str, Any]]
) -> tuple[int, float] | None:
    """Each trial's final metrics, epochs and state into its entry; returns
    the group's best (trial index, ranking value), None when none ranks."""
    best: tuple[int, float] | None = None
    for position, index in enumerate(indices):
        trial = trials_record[index]
        history = result.histories[position]
        trial["metrics"] = {name: values[-1] for name, values in history.items()
                            if values and ":" not in name}  # fmt: skip
        trial["epochs"] = result.epochs_run[position]
        trial["state"] = "stopped" if result.stopped[position] else "succeeded"
        if result.fold_metrics[position] is not None:
            trial["folds"] = result.fold_metrics[position]
        value = trial["metrics"].get(plan.metric, math.nan)
        if not result.stopped[position] and better(plan.mode, value, best and best[1]):
            best = (index, value)
    return best


# --- a search's groups as group jobs, spread over the workers --------------------------


def run_group_job(job: JobRecord, lease: LeaseKeeper, context: WorkerContext) -> dict[str, Any]:
    """A group job's work: train its group, record its trials, leave its best
    model in the store for the search; returns the job's result."""
    from worker.runner import JobProgress

    plan = job_trials(job["spec"] or {}, job.get("search"))
    group = int(job.get("group") or 0)
    indices = [trial["index"] for trial in job.get("trials") or []]
    dataset = context.datasets.load(job["dataset"])
    by_index = {trial.index: trial for trial in plan.trials}
    resume = resumed_group(job, plan, lease, context)
    progress = JobProgress(context.jobs, job["id"], by_index[indices[0]].spec.fit.epochs, lease,
                           resume.history if resume else None, context.stopping)  # fmt: skip
    trials_record = plan.record()["trials"]  # the search's, by index: this group's are written
    started = time.perf_counter()
    best = _train_here(job, plan, indices, dataset, progress, trials_record, lease, context,
                       group, resume)  # fmt: skip
    fit_seconds = time.perf_counter() - started
    outcome: dict[str, Any] = {"group": group, "best": None, "fit_s": round(fit_seconds, 3),
                               "samples": int(dataset.x.shape[0])}  # fmt: skip
    if best is not None:
        outcome["best"] = {"index": best.index, "value": best.value, "fit_s": outcome["fit_s"]}
        if not plan.folds and best.group is not None:  # with folds the search refits
            key = f"{SEARCH_BLOBS}/{job.get('parent')}/group-{group}.keras"
            trained = best.group.result(best.group.trials.index(by_index[best.index]))
            with tempfile.TemporaryDirectory(prefix="fitserve-group-") as folder:
                path = Path(folder) / "model.keras"
                trained.model.save(path)
                lease.confirm()
                context.models.blobs.put_file(key, path)
            outcome["best"]["model"] = key
    return {"model": job["model"], "version": None, "metrics": {}, **outcome}


def _spread(
    job: JobRecord, plan: TrialPlan, groups: list[list[int]], progress: JobProgress,
    trials_record: list[dict[str, Any]], lease: LeaseKeeper, context: WorkerContext,
) -> _Ranked | None:  # fmt: skip
    """Coordinate the search's group jobs: create and send the missing ones,
    train the ones still queued here, wait for the rest; then fold their
    trials and epochs into the search's record. Returns the best trial."""
    from worker.runner import run_training_job

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
            run_training_job(waiting[0]["id"], context)  # or finds another worker took it
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
) -> _Ranked | None:  # fmt: skip
    """Every group job's epochs into the search's history, in group order;
    failed groups' trials marked failed; the best of the groups' bests."""
    best: _Ranked | None = None
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
            best = _Ranked(found["index"], found["value"], stored=found.get("model"),
                           fit_seconds=found.get("fit_s", 0.0))  # fmt: skip
    return best


def _stored_result(
    best: _Ranked, spec: ModelSpec, dataset: Dataset, winner: dict[str, Any],
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
