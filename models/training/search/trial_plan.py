"""What a job of many trials will train, decided before it is queued: its
trials (a search's, or the one spec of a k-fold job), how they are ranked,
and which of them share one program (`program_groups`). Pure Python and
pydantic: the API builds the plan to check a job and fill its record, the
worker builds it again to train (drawing again gives the same trials)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.errors import ValidationFailed, problem
from models.layers.registry import KINDS, kind_of
from models.training.search.space import Search, Trial, ranking, shape_groups, trial_specs
from models.training.spec import ModelSpec

if TYPE_CHECKING:
    from models.records import JobRecord

# Fields shape_groups lets vary inside a group that this program still bakes in
# as constants; trials that differ in one train in separate programs.
UNTRACED = (
    "compile.optimizer.momentum",
    # Only zero against non-zero: the values themselves are per-trial inputs.
    *dict.fromkeys(
        f"layers.<i>.{field}" for kind in KINDS.values() for field in kind.split_on_zero
    ),
)


def program_groups(trials: Sequence[Trial]) -> list[list[int]]:
    """shape_groups, split further by the UNTRACED fields: each group here is
    one `train_group` call. Trial indices, groups in order of their first trial."""
    by_index = {trial.index: trial for trial in trials}
    groups: list[list[int]] = []
    for shape_group in shape_groups(trials):
        split: dict[str, list[int]] = {}
        for index in shape_group:
            split.setdefault(_untraced_key(by_index[index].spec), []).append(index)
        groups.extend(split.values())
    return groups


def is_multi_trial(job: JobRecord) -> bool:
    """Whether `job` trains many models: a search, or k-fold validation."""
    spec = job.get("spec") or {}
    return bool(job.get("search")) or bool((spec.get("fit") or {}).get("folds"))


def search_json(search: Search) -> dict[str, Any]:
    """`search` as the job record and the model's metadata show it: every
    field, and each dimension by its one form (`{"int": [0, 9]}`)."""
    shown = search.model_dump(mode="json", by_alias=True)
    shown["space"] = search.model_dump(mode="json", by_alias=True, exclude_none=True)["space"]
    return shown


def job_trials(spec: dict[str, Any], search: dict[str, Any] | None) -> TrialPlan:
    """The trials of a job and how they are ranked; ValidationFailed (a 422
    at the search's path) for a search the spec cannot run."""
    if search is None:
        # k-fold validation of one spec: one trial, ranked by nothing but itself.
        only = Trial(0, {}, ModelSpec.model_validate(spec))
        return TrialPlan(trials=[only], metric="val_loss", mode="min", search=None)
    parsed = Search.model_validate(search)
    trials = trial_specs(spec, parsed)
    if any(trial.spec.fit.early_stopping is not None for trial in trials):
        raise ValidationFailed(
            "Trials train side by side for the same epochs, each stopped only by halving: "
            "a search takes no fit.early_stopping (use search.halving). "
            "Received: fit.early_stopping",
            [problem(["spec", "fit", "early_stopping"], "not allowed with search")],
        )
    metric, mode = ranking(parsed, trials)
    return TrialPlan(trials=trials, metric=metric, mode=mode, search=parsed)


@dataclass(frozen=True)
class TrialPlan:
    trials: list[Trial]
    metric: str
    mode: str
    search: Search | None

    @property
    def folds(self) -> int | None:
        return self.trials[0].spec.fit.folds

    @property
    def refits_beside_folds(self) -> bool:
        """A k-fold job of one trial trains its refit on every row as one more
        member beside its folds, in the same program and epochs; a search
        with folds refits its winner once the folds have ranked the trials."""
        return self.folds is not None and len(self.trials) == 1

    def epochs(self) -> int:
        """The entries the job's history will hold: every group's epochs, and
        with folds the refit's after them (at most the longest trial's),
        unless it trains beside the folds."""
        by_index = {trial.index: trial for trial in self.trials}
        epochs = [by_index[group[0]].spec.fit.epochs for group in program_groups(self.trials)]
        refit_after = self.folds is not None and not self.refits_beside_folds
        return sum(epochs) + (max(epochs) if refit_after else 0)

    def record(self) -> dict[str, Any]:
        """The job record's fields for these trials before any trains."""
        group_of = {index: group for group, indices in enumerate(program_groups(self.trials))
                    for index in indices}  # fmt: skip
        return {
            "ranking": {"metric": self.metric, "mode": self.mode},
            "trials": [
                {
                    "index": trial.index,
                    "params": trial.params,
                    "metrics": {},
                    "state": "queued",
                    "epochs": 0,
                    "group": group_of[trial.index],
                }
                for trial in self.trials
            ],  # fmt: skip
            "best": None,
        }


def _untraced_key(spec: ModelSpec) -> str:
    options = spec.compile.optimizer_options
    layers = [kind_of(layer).split_key(layer) for layer in spec.layers]
    return json.dumps([options.momentum, layers])
