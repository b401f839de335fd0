"""The two stores the benchmarks compare: a local folder (the single-host
default) and a bucket on a real S3 server (SeaweedFS, started on loopback by
the benchmark itself), each behind its own fitserve processes."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from models.settings import S3, Queues, Settings
from service.local_processes import SeaweedFS, Service, free_port, settings_environment

KEY = "bench-key-0123456789abcdef"  # keys are at least 16 characters
STORES = ("local", "s3")
STORE_NAMES = {"local": "local folder", "s3": "S3 bucket (SeaweedFS on loopback)"}
# One fixed key pair for the bench's SeaweedFS (weed adopts these variables as
# its admin identity) and for every boto3 client: set in this process, so in
# every process it starts.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "fitserve-bench", "AWS_SECRET_ACCESS_KEY": "fitserve-bench",
                  "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def start_seaweedfs(folder: Path) -> SeaweedFS:
    os.environ.update(S3_CREDENTIALS)
    return SeaweedFS(folder)


def bench_settings(data_dir: Path, server: SeaweedFS | None = None) -> Settings:
    """Settings of their own (data folder, Redis prefix, queues); with `server`
    the store is a new bucket on it, and `data_dir` only this host's cache."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(data_dir=data_dir, redis_prefix=f"bench-{tag}",
                        queues=Queues(cpu=f"bench-{tag}.cpu", gpu=f"bench-{tag}.gpu"),
                        api_keys=[KEY])  # fmt: skip
    if server is None:
        return settings
    return settings.model_copy(update={
        "store_url": f"s3://fitserve-bench-{tag}/store",
        "s3": S3(endpoint_url=server.endpoint_url),
    })  # fmt: skip


def start_api(settings: Settings, log: Path, grpc_port: int = 0,
              **variables: str) -> tuple[Service, int]:  # fmt: skip
    """`fitserve-api` on `settings` with their worker processes (one per
    core), gRPC on `grpc_port` (0: off) and `variables` in its environment:
    the service, not waited for, and its HTTP port."""
    port = free_port()
    environment = settings_environment(settings, port, grpc_port) | {
        "FITSERVE_SERVER__WORKERS": str(settings.server.workers), **variables}  # fmt: skip
    return Service.entry_point(["fitserve-api"], environment, log), port
