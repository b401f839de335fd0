"""docker-compose.yml and the Dockerfile: their shape, and that each command they
run is one of our console scripts that really starts here, against the local
Redis (there is no Docker engine in CI to catch a wrong command or setting)."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.settings import Settings
from service.local_processes import (
    BIN,
    Service,
    api_answers,
    free_port,
    settings_environment,
    worker_answers,
)

ROOT = Path(__file__).resolve().parents[1]
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
    here = settings_environment(settings, port)
    mapped = {
        **environment(service),
        **{k: v for k, v in here.items() if k.startswith("FITSERVE_")},
    }
    assert not [key for key, value in mapped.items() if "${" in value], "unmapped interpolation"
    return {**here, **mapped}


def first_service_per_command() -> list[str]:
    """worker-gpu runs the same command as worker (with no GPU here it would take
    the CPU queue too): each distinct command is started once."""
    firsts: dict[tuple[str, ...], str] = {}
    for name in BUILT:
        firsts.setdefault(tuple(command(SERVICES[name])), name)
    return list(firsts.values())


@pytest.mark.parametrize("name", first_service_per_command())
def test_command_starts_and_stops(name: str, settings: Settings, tmp_path: Path) -> None:
    service, port = SERVICES[name], free_port()
    started = Service.entry_point(command(service), local_environment(service, settings, port),
                      tmp_path / "process.log")  # fmt: skip
    try:
        if service.get("ports"):
            started.wait_until(api_answers(f"http://127.0.0.1:{port}"), START_TIMEOUT_S)
        else:
            started.wait_until(worker_answers(settings.redis_url, started.process.pid),
                               START_TIMEOUT_S)  # fmt: skip
    finally:
        code = started.stop(STOP_TIMEOUT_S)
    assert code == 0, f"{name} exited with {code} after SIGTERM:\n{started.log_tail()}"
