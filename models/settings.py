"""Settings: one object, read from `FITSERVE_*` environment variables.

Built once by each entry point (API, worker, tests) and passed down; nothing
reads the environment at import time. Nested groups use `__`, e.g.
`FITSERVE_LIMITS__MAX_UPLOAD_BYTES=1048576`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ByteSize, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Limits(BaseModel):
    max_upload_bytes: int = 256 * 1024 * 1024
    # Samples in one :predict request (a larger one is a 413 saying so).
    max_predict_rows: int = 1_000_000
    # Rows x outputs of one :batchPredict job, checked when it is submitted: the
    # worker holds the outputs whole (float32, 400 MB at this default) and the
    # result is stored and served from them (streamed, so the API holds a chunk).
    max_batch_predict_values: int = 100_000_000
    # Rows run through the serving pass at a time by :evaluate: its memory is
    # this many rows of outputs and encoded labels, whatever the dataset's size.
    evaluate_chunk_rows: int = Field(default=65_536, ge=1)
    # Values (rows x features) of a dataset :evaluate loads in the API process:
    # it holds the samples whole (float32, 100 MB at this default) while the
    # outputs go a chunk at a time. A larger dataset is a 422 saying so.
    max_evaluate_values: int = Field(default=25_000_000, ge=1)


class Server(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # One API worker process per core: each answers from its own model
    # cache, and numpy releases the GIL inside the matrix products.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 2)
    # Threads per process: event streams (SSE) hold one each while they last.
    threads: int = 16
    # Open event streams per process, at most: beyond it a stream is a 503 with
    # Retry-After. Half the threads, so that watchers (a dashboard per open tab)
    # never hold every thread and predictions and polls still get answered.
    max_event_streams: int = Field(default=8, ge=1)


class Grpc(BaseModel):
    """The Open Inference Protocol over gRPC (service.grpc_api), served by
    each API worker process beside HTTP, on the same host (`server.host`)."""

    # Triton's and KServe's gRPC port; 0 turns gRPC off.
    port: int = Field(default=8001, ge=0, le=65535)
    # Threads per process answering gRPC calls.
    threads: int = Field(default=8, ge=1)


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
    # A finished job's record, its history and a prediction job's result are
    # kept this long, then forgotten: without a limit Redis and the store grow
    # with every job ever run. A month leaves time to look a job up, fetch a
    # batch result, or compare runs; models published by jobs are kept regardless.
    retention_days: float = Field(default=30.0, gt=0)

    @property
    def retention_s(self) -> float:
        return self.retention_days * 86400


class S3(BaseModel):
    """The S3-compatible server of an `s3://` store. Credentials and region come
    the standard AWS way (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION); the endpoint may come from AWS_ENDPOINT_URL too."""

    endpoint_url: str | None = None
    # Path-style (`host/bucket/key`) is what SeaweedFS and MinIO answer out of
    # the box; AWS answers both.
    addressing_style: Literal["path", "virtual", "auto"] = "path"


class Redis(BaseModel):
    """How long a call to Redis may wait. A Redis that stops answering without
    closing its connections (stopped, swapped out, behind a network that drops
    packets) turns into an error after this long, never a call that waits for
    good: a job route answers 503 within 5 s. Failed calls are not retried
    (models.redis_client), so one call waits at most one timeout."""

    # A command's answer takes milliseconds; a Redis silent for 2 s is stalled.
    socket_timeout_s: float = Field(default=2.0, gt=0)
    connect_timeout_s: float = Field(default=2.0, gt=0)


class PredictionLog(BaseModel):
    """The prediction log (models.serving.prediction_log_writer): this share of predict
    requests, on every protocol, kept as JSON lines in the store, by hour."""

    # 0 is off (the default), 1 every request.
    sample: float = Field(default=0.0, ge=0, le=1)
    # Each API process writes what it holds this often (one object per model).
    flush_s: float = Field(default=5.0, gt=0)
    # Records waiting for the writer, per process; more are dropped and counted
    # (fitserve_prediction_log_records_total{outcome="dropped"}).
    max_queued: int = Field(default=4096, ge=1)
    # Rows of a batch kept in its record (the first ones; `rows` says how many).
    max_rows: int = Field(default=100, ge=1)
    # Hours older than this are deleted by the workers' sweeper.
    retention_days: float = Field(default=7.0, gt=0)

    @property
    def retention_s(self) -> float:
        return self.retention_days * 86400


# Each API process's model memory: by default enough for thousands of small
# models and hundreds of MNIST-sized ones on a machine of a few GB per
# process; below the least, not even one small model fits beside a version's
# fixed cost.
DEFAULT_MODEL_CACHE_BYTES = 512 * 1024 * 1024
MIN_MODEL_CACHE_BYTES = 1024 * 1024

# An entry of FITSERVE_API_KEYS is `<key>` (every route) or `<role>:<key>`.
KEY_ROLES = ("full", "predict")
MIN_KEY_LENGTH = 16


def key_role(entry: str, position: int = 0) -> tuple[str, str]:
    """(role, key) of an entry of `api_keys`."""
    role, separator, key = entry.partition(":")
    if not separator:
        return "full", entry
    if role not in KEY_ROLES:
        # A mistyped role must not turn into a key with every right.
        raise ValueError(
            f"Entry {position} of FITSERVE_API_KEYS is <key> or <role>:<key> with a role "
            f"among {list(KEY_ROLES)}; its role is none of them."
        )
    return role, key


class Settings(BaseSettings):
    # Errors never echo what they refused: it may be an API key.
    model_config = SettingsConfigDict(
        env_prefix="FITSERVE_", env_nested_delimiter="__", hide_input_in_errors=True
    )

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
    redis: Redis = Field(default_factory=Redis)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    keras_backend: Literal["jax", "tensorflow", "torch"] = "jax"
    limits: Limits = Field(default_factory=Limits)
    queues: Queues = Field(default_factory=Queues)
    server: Server = Field(default_factory=Server)
    grpc: Grpc = Field(default_factory=Grpc)
    jobs: Jobs = Field(default_factory=Jobs)
    prediction_log: PredictionLog = Field(default_factory=PredictionLog)
    # One JSON object per log line (for log collectors), or "text" for people.
    log_format: Literal["json", "text"] = "json"
    # What each API process holds to serve (weights and serving plans), at
    # most: within it the latest and every labelled version of every model
    # stay loaded (models.serving.model_memory). Bytes, or a size such as
    # "512MiB" or "2GB". A dense 784-512-10 network takes about 1.7 MB.
    model_cache_bytes: ByteSize = ByteSize(DEFAULT_MODEL_CACHE_BYTES)
    # Load every model's latest version when an API process starts.
    preload_models: bool = True
    # How long a SavedModel/ONNX export's build (a TensorFlow child process,
    # models.serving.exporter) may run before it is stopped and answered with a 500.
    export_time_limit_s: float = Field(default=300.0, gt=0)

    @field_validator("model_cache_bytes")
    @classmethod
    def _check_model_memory(cls, value: ByteSize) -> ByteSize:
        if value < MIN_MODEL_CACHE_BYTES:
            raise ValueError(
                f"{int(value):,} bytes is too small for even one "
                f"model (a version's fixed cost alone is tens of KB); at least "
                f"{MIN_MODEL_CACHE_BYTES:,} (1MiB). The default is "
                f"{DEFAULT_MODEL_CACHE_BYTES // 2**20}MiB."
            )
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, entries: list[str]) -> list[str]:
        # Entries are named by position: an error must never print a key.
        seen = set()
        for position, entry in enumerate(entries, 1):
            _, key = key_role(entry, position)
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"API keys are at least {MIN_KEY_LENGTH} characters long; entry {position} "
                    "of FITSERVE_API_KEYS is shorter. Make one with: python3 -c "
                    "'import secrets; print(secrets.token_urlsafe(32))'"
                )
            if key in seen:
                raise ValueError(f"Entry {position} of FITSERVE_API_KEYS repeats a key.")
            seen.add(key)
        return entries

    @property
    def cache_dir(self) -> Path:
        """Local copies of a bucket's objects (models.storage.blobs)."""
        return self.data_dir / "cache"


def settings_or_exit(program: str) -> Settings:
    """The settings, or the process ends with what is wrong in them, one
    line a setting, instead of a traceback (a start-up error people read)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        lines = [f"{program}: the settings are not valid:"]
        for problem in error.errors():
            where = "FITSERVE_" + "__".join(str(part) for part in problem["loc"]).upper()
            message = str(problem["msg"]).removeprefix("Value error, ")
            lines.append(f"  {where}: {message}")
        raise SystemExit("\n".join(lines)) from None
