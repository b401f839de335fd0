"""Settings: one object, read from `FITSERVE_*` environment variables.

Built once by each entry point (API, worker, tests) and passed down; nothing
reads the environment at import time. Nested groups use `__`, e.g.
`FITSERVE_LIMITS__MAX_UPLOAD_BYTES=1048576`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Limits(BaseModel):
    max_upload_bytes: int = 256 * 1024 * 1024
    max_predict_rows: int = 1_000_000


class Server(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # One gunicorn worker process per core: each answers from its own model
    # cache, and numpy releases the GIL inside the matrix products.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 2)
    # Threads per process: event streams (SSE) hold one each while they last.
    threads: int = 16


class Queues(BaseModel):
    """Celery queue names: GPU hosts consume `gpu`, CPU hosts `cpu`."""

    cpu: str = "fitserve.cpu"
    gpu: str = "fitserve.gpu"


class Jobs(BaseModel):
    """How a job survives its worker: a running job holds a lease in Redis that
    its worker renews; a job whose lease lapses is delivered again, and resumes
    from its last checkpoint, until it has been delivered `max_attempts` times."""

    lease_s: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)


class S3(BaseModel):
    """The S3-compatible server of an `s3://` store. Credentials and region come
    the standard AWS way (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION); the endpoint may come from AWS_ENDPOINT_URL too."""

    endpoint_url: str | None = None
    # Path-style (`host/bucket/key`) is what SeaweedFS and MinIO answer out of
    # the box; AWS answers both.
    addressing_style: Literal["path", "virtual", "auto"] = "path"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITSERVE_", env_nested_delimiter="__")

    data_dir: Path = Path("var")
    # Where datasets, model versions, checkpoints and results live: a local
    # folder (by default `data_dir` itself, the single-host layout) or
    # `s3://bucket/prefix`, which every host shares. With a bucket, `data_dir`
    # is this process's own cache of what it downloaded, never shared.
    store_url: str | None = None
    s3: S3 = Field(default_factory=S3)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prefix of every Redis key we write, so several deployments (or test
    # runs) can share one Redis without seeing each other's jobs.
    redis_prefix: str = "fitserve"
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    keras_backend: Literal["jax", "tensorflow", "torch"] = "jax"
    limits: Limits = Field(default_factory=Limits)
    queues: Queues = Field(default_factory=Queues)
    server: Server = Field(default_factory=Server)
    jobs: Jobs = Field(default_factory=Jobs)
    # One JSON object per log line (for log collectors), or "text" for people.
    log_format: Literal["json", "text"] = "json"
    model_cache_size: int = 8
    # Load every model's latest version when an API process starts.
    preload_models: bool = True

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def cache_dir(self) -> Path:
        """Local copies of a bucket's objects (models.storage.blobs)."""
        return self.data_dir / "cache"
