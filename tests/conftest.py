"""Shared fixtures: settings isolated per test (their own data folder, Redis key
prefix and queue names on the real local Redis), and API clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The backend is chosen once per test process, before anything imports keras.
BACKEND = os.environ.setdefault("FITSERVE_KERAS_BACKEND", "jax")
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.settings import S3, Queues, Settings  # noqa: E402
from service.local_processes import SeaweedFS, forget_redis_state  # noqa: E402, F401

REDIS_URL = os.environ.get("FITSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API_KEY = "test-key-0123456789abcdef"  # keys are at least 16 characters


def isolated_settings(data_dir: Path) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        data_dir=data_dir,
        redis_url=REDIS_URL,
        redis_prefix=f"fitserve-test-{tag}",
        queues=Queues(cpu=f"fitserve-test-{tag}.cpu", gpu=f"fitserve-test-{tag}.gpu"),
        api_keys=[API_KEY],
        keras_backend=BACKEND,  # type: ignore[arg-type]
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every item the node id its name says. Schemathesis names each
    operation's item `test[GET /path]` but gives them all the test's id, and
    pytest-xdist, which tells items apart by id, then runs one of them under
    `--dist loadscope` (`make test`)."""
    for item in items:
        parent, _, last = item.nodeid.rpartition("::")
        if last != item.name:
            item._id = type(item.id).parse(f"{parent}::{item.name}")  # pytest 9's NodeId


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = isolated_settings(tmp_path / "var")
    yield settings
    forget_redis_state(settings)


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


# The one key pair of the tests' SeaweedFS (weed takes these two variables as
# its admin identity) and of every client: set for boto3 in this process and
# in the processes it starts.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "fitserve-test", "AWS_SECRET_ACCESS_KEY": "fitserve-test",
                  "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3 server (SeaweedFS) on loopback, shared by the session's tests:
    each test takes a bucket of its own (`s3_settings`)."""
    for name, value in S3_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


def in_bucket(settings: Settings, server: SeaweedFS) -> Settings:
    """`settings` with the store in a new bucket of `server`; `data_dir` its cache."""
    return settings.model_copy(update={
        "store_url": f"s3://fitserve-{uuid.uuid4().hex[:12]}/store",
        "s3": S3(endpoint_url=server.endpoint_url),
    })  # fmt: skip


@pytest.fixture
def s3_settings(settings: Settings, seaweedfs: SeaweedFS) -> Settings:
    return in_bucket(settings, seaweedfs)
