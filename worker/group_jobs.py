"""A search's groups: the trials that share one program, trained side by side
(models.training.fused.group_trainer) in one job. A search of several groups
makes one group job per group (`parent` names the search, `group` its number),
a job like any other: claimed once, its lease kept, sent again by the sweeper
if its worker dies, cancelled with its search. It leaves its best model in the
store (`searches/<search>/`) for the search's coordinator to publish.

Each epoch of a group is one entry of the job's history: its `epoch`, `group`,
and each running trial's logs under `"<trial>:<metric>"` (with folds, the fold
mean there and each fold's under `"<trial>:f<j>:<metric>"`). Redelivered, a
job that trains one group goes on from its group's last checkpoint.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.datasets import Dataset
from models.errors import SearchFailed
from models.records import JobRecord
from models.storage.checkpoint_files import Checkpoint
from models.training.checkpoints import Checkpointer
from models.training.search.ranking import better
from models.training.search.trial_plan import TrialPlan, job_trials, program_groups
from worker.context import WorkerContext
from worker.leases import LeaseKeeper
from worker.progress import JobProgress, record_restart

if TYPE_CHECKING:
    from models.training.fused.group_trainer import GroupResult

# Where a group job leaves its best trial's model for the search to publish.
SEARCH_BLOBS = "searches"


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
class Ranked:
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


def run_group_job(job: JobRecord, lease: LeaseKeeper, context: WorkerContext) -> dict[str, Any]:
    """A group job's work: train its group, record its trials, leave its best
    model in the store for the search; returns the job's result."""
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
    best = train_here(job, plan, indices, dataset, progress, trials_record, lease, context,
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


def train_here(
    job: JobRecord, plan: TrialPlan, indices: list[int], dataset: Dataset,
    progress: JobProgress, trials_record: list[dict[str, Any]], lease: LeaseKeeper,
    context: WorkerContext, group: int = 0, resume: GroupResume | None = None,
) -> Ranked | None:  # fmt: skip
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
    return None if best is None else Ranked(best[0], best[1], group=result)


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
