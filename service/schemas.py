"""Request bodies, as pydantic models: they validate requests and document them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from models.ids import MODEL_NAME, anchored
from models.training.search.space import Search
from models.training.spec import ModelSpec, StrictModel

ModelName = Annotated[str, Field(pattern=anchored(MODEL_NAME))]


class TrainingSpec(StrictModel):
    """The `spec` part of a multipart job: the dataset comes as the `file` part."""

    model: ModelName
    spec: ModelSpec
    # Many trials of `spec` in one job (models.training.search.space); the best is published.
    search: Search | None = None


class JobRequest(TrainingSpec):
    dataset: Annotated[str, Field(min_length=1, max_length=64)]


class BatchPredictRequest(StrictModel):
    dataset: Annotated[str, Field(min_length=1, max_length=64)]


class EvaluateRequest(StrictModel):
    """The stored, labelled dataset to evaluate a model version on."""

    dataset: Annotated[str, Field(min_length=1, max_length=64)]
