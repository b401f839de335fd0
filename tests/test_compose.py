"""docker-compose.yml and the Dockerfile: their shape, and that each command they
run is one of our console scripts that really starts here, against the local
Redis (there is no Docker engine in CI to catch a wrong command or setting)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from celery import Celery

from models.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
BUILT = [name for name, service in SERVICES.items() if "build" in service]
START_TIMEOUT_S = 60.0  # importing TensorFlow/JAX takes several seconds
STOP_TIMEOUT_S = 30.0


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def environment(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("environment") or {}
    pairs = dict(item.split("=", 1) for item in value) if isinstance(value, list) else value
    return {key: str(val) for key, val in pairs.items()}


def text(value: str | list[str]) -> str:
    """A healthcheck or command, in either the string or the list form, as one string."""
    return value if isinstance(value, str) else " ".join(value)


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount path -> named volume (short `name:/path[:mode]` or long syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source in (COMPOSE.get("volumes") or {}):
            mounts[target] = source
    return mounts


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    parts = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(part[0].upper(), part[1] if len(part) > 1 else "") for part in parts]


def test_services_and_redis() -> None:
    assert {"redis", "api", "worker", "worker-gpu"} <= SERVICES.keys()
    redis = SERVICES["redis"]
    assert redis["image"].startswith("redis:7")
    assert "--appendonly yes" in text(redis["command"])
    assert "redis-cli ping" in text(redis["healthcheck"]["test"])
    assert "/data" in volume_mounts(redis)
    api = SERVICES["api"]
    assert "/healthz" in text(api["healthcheck"]["test"])
    assert environment(api)["FITSERVE_API_KEYS"].startswith("${FITSERVE_API_KEYS")
    for name in BUILT:
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert environment(SERVICES[name])["FITSERVE_REDIS_URL"] == "redis://redis:6379/0", name


def test_gpu_worker_reserves_an_nvidia_gpu_and_builds_a_cuda_jax() -> None:
    gpu = SERVICES["worker-gpu"]
    assert "gpu" in gpu["profiles"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert gpu["build"]["args"]["JAX_EXTRA"].startswith("cuda")
    assert any(key == "ARG" and args.startswith("JAX_EXTRA") for key, args in dockerfile())
    assert "jax[${JAX_EXTRA}]" in (ROOT / "Dockerfile").read_text()


def test_api_and_workers_share_the_store_at_their_data_dir() -> None:
    assert {"api", "worker", "worker-gpu"} <= set(BUILT)
    stores = set()
    for name in BUILT:
        data_dir = environment(SERVICES[name])["FITSERVE_DATA_DIR"]
        assert data_dir in volume_mounts(SERVICES[name]), f"{name}: no named volume at {data_dir}"
        stores.add((volume_mounts(SERVICES[name])[data_dir], data_dir))
    assert len(stores) == 1, stores


@pytest.mark.parametrize("name", BUILT)
def test_command_is_an_installed_console_script(name: str) -> None:
    script = command(SERVICES[name])[0]
    assert script in SCRIPTS, f"{name} runs {script!r}, not one of {sorted(SCRIPTS)}"
    assert os.access(BIN / script, os.X_OK), f"{script} is not installed in {BIN}"


def test_dockerfile_runs_an_entry_point_and_copies_every_package() -> None:
    instructions = dockerfile()
    starts = [args for key, args in instructions if key in ("CMD", "ENTRYPOINT")]
    assert starts, "no CMD or ENTRYPOINT"
    argv = json.loads(starts[-1]) if starts[-1].startswith("[") else shlex.split(starts[-1])
    assert argv[0] in SCRIPTS
    copied = set()
    for key, args in instructions:
        if key == "COPY":
            sources = [arg for arg in shlex.split(args) if not arg.startswith("--")][:-1]
            copied |= {source.removeprefix("./").rstrip("/") for source in sources}
    assert "pyproject.toml" in copied or "." in copied
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*").rstrip(".")
        assert package in copied or "." in copied, f"the Dockerfile does not copy {package}/"


def local_environment(service: dict[str, Any], settings: Settings, port: int) -> dict[str, str]:
    """The service's FITSERVE_* environment mapped onto this machine and this test."""
    here = {
        "FITSERVE_REDIS_URL": settings.redis_url,
        "FITSERVE_DATA_DIR": str(settings.data_dir),
        "FITSERVE_REDIS_PREFIX": settings.redis_prefix,
        "FITSERVE_QUEUES__CPU": settings.queues.cpu,
        "FITSERVE_QUEUES__GPU": settings.queues.gpu,
        "FITSERVE_API_KEYS": ",".join(settings.api_keys),
        "FITSERVE_KERAS_BACKEND": settings.keras_backend,
        "FITSERVE_SERVER__HOST": "127.0.0.1",
        "FITSERVE_SERVER__PORT": str(port),
    }
    mapped = {**environment(service), **here}
    assert not [key for key, value in mapped.items() if "${" in value], "unmapped interpolation"
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("FITSERVE_")}
    return {**inherited, **mapped}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_answers(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
            return False

    return probe


def worker_answers(app: Celery, pid: int) -> Callable[[], bool]:
    # `stats` rather than `ping`: its reply carries the pid, so we know that this
    # process answered, whatever its node name and whatever else shares the broker.
    host = f"@{socket.gethostname()}"

    def probe() -> bool:
        replies = app.control.broadcast("stats", reply=True, timeout=1.0)
        return any(
            node.endswith(host) and stats.get("pid") == pid
            for reply in replies
            for node, stats in reply.items()
        )

    return probe


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[[list[str], dict[str, str]], subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (tmp_path / "process.log").open("wb") as log:
            process = subprocess.Popen(
                argv, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:  # whatever the test did, leave nothing running
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def first_service_per_command() -> list[str]:
    """worker-gpu runs the same command as worker (with no GPU here it would take
    the CPU queue too): each distinct command is started once."""
    firsts: dict[tuple[str, ...], str] = {}
    for name in BUILT:
        firsts.setdefault(tuple(command(SERVICES[name])), name)
    return list(firsts.values())


@pytest.mark.parametrize("name", first_service_per_command())
def test_command_starts_and_stops(
    name: str, settings: Settings, launch: Callable[..., subprocess.Popen], tmp_path: Path
) -> None:
    service, port = SERVICES[name], free_port()
    argv = command(service)
    process = launch([str(BIN / argv[0]), *argv[1:]], local_environment(service, settings, port))

    def log_tail() -> str:
        return (tmp_path / "process.log").read_text(errors="replace")[-3000:]

    app = Celery(broker=settings.redis_url, set_as_current=False)
    try:
        answers = api_answers(port) if service.get("ports") else worker_answers(app, process.pid)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers():
            assert process.poll() is None, f"{name} exited with {process.returncode}:\n{log_tail()}"
            assert time.monotonic() < deadline, f"{name} not up in time:\n{log_tail()}"
            time.sleep(0.5)
    finally:
        app.close()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} still running {STOP_TIMEOUT_S}s after SIGTERM:\n{log_tail()}")
    assert process.returncode == 0, f"{name} exited with {process.returncode}:\n{log_tail()}"
