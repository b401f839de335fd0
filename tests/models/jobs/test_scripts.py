"""The Lua scripts load as package resources, and every one ships in a wheel."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import pytest
import redis

from models.jobs.codec import FINAL_STATES, STATES
from models.jobs.scripts import JobScripts, indexing, source
from models.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = resources.files("models.jobs") / "scripts"
NAMES = sorted(entry.name.removesuffix(".lua") for entry in SCRIPTS.iterdir()
               if entry.name.endswith(".lua"))  # fmt: skip


def test_every_script_is_package_data() -> None:
    """A non-editable install carries only what package-data names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["models"]
    assert NAMES
    for name in NAMES:
        assert any(fnmatch(f"jobs/scripts/{name}.lua", pattern) for pattern in patterns), name


@pytest.mark.parametrize("name", NAMES)
def test_each_script_reads_from_the_package(name: str) -> None:
    assert source(name) == (SCRIPTS / f"{name}.lua").read_text(encoding="utf-8")


def test_indexing_names_the_states_and_this_stores_retention() -> None:
    prelude = indexing(retention_s=1.5)
    assert all(f"'\"{state}\"'" in prelude for state in STATES)
    assert all(f"['\"{state}\"'] = true" in prelude for state in FINAL_STATES)
    assert "local RETENTION_MS = 1500\n" in prelude
    assert prelude.endswith(source("reindex"))


def test_every_script_compiles_on_redis(settings: Settings) -> None:
    """SCRIPT LOAD compiles each one: a Lua syntax error fails here, not in a
    worker's first claim."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        scripts = JobScripts.register(client, retention_s=60.0)
        for name, script in vars(scripts).items():
            assert client.script_load(script.script) == script.sha, name
    finally:
        client.close()
