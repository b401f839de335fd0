"""The records that travel between rooms and processes, typed: a job (kept
in Redis, shown by the API) and a stored dataset (kept beside its arrays).

TypedDicts rather than classes: a record is JSON in Redis, on disk and on the
wire, and stays a plain dict everywhere; the types let mypy check every read
and write of a field.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

JobKind = Literal["train", "predict"]
DatasetFormat = Literal["csv", "json", "npz"]
TargetKind = Literal["binary", "categorical", "numeric"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Progress(TypedDict):
    epoch: int | None  # epochs finished; None for a prediction job
    epochs: int | None
    fraction: float
    eta_s: float | None


class Restart(TypedDict):
    """A dead worker's job taken up again by another delivery."""

    at: str
    attempt: int
    worker: str
    lost_worker: str | None
    resumed_from_epoch: int


class JobError(TypedDict):
    code: str
    message: str
    traceback: NotRequired[str]


class JobRecord(TypedDict):
    id: str
    kind: JobKind
    model: str
    state: JobState
    spec: dict[str, Any] | None  # a train job's ModelSpec, as JSON
    version: int | None  # the version a predict job uses
    dataset: str
    progress: Progress
    metrics: dict[str, float]
    history: dict[str, list[float]]
    result: dict[str, Any] | None
    error: JobError | None
    device: str | None
    worker: str | None
    queue: str | None
    attempts: int
    restarts: list[Restart]
    resumed_from_epoch: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    # A search or k-fold job (models.training.search.trial_plan): the search as asked,
    # how trials rank, each trial, and the best once the job has succeeded.
    search: NotRequired[dict[str, Any] | None]
    ranking: NotRequired[dict[str, str]]
    trials: NotRequired[list[dict[str, Any]]]
    best: NotRequired[dict[str, Any] | None]
    # A search's group jobs; a group job's search and its group number.
    groups: NotRequired[list[str]]
    parent: NotRequired[str]
    group: NotRequired[int]


class TargetSummary(TypedDict):
    """What a dataset's labels are: classes and their counts, or numeric stats."""

    kind: TargetKind
    classes: list[Any]
    counts: dict[str, int]
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    mean: NotRequired[float | None]
    outputs: NotRequired[int]
    column: NotRequired[str | None]  # a CSV's label column


class DatasetRecord(TypedDict):
    id: str
    rows: int
    x_shape: list[int]
    x_dtype: str
    target: TargetSummary
    sha256: str
    format: DatasetFormat
    bytes: int
    created_at: str
