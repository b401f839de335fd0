"""Dependency floors that are there for safety, and the installed versions
meeting them."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def requirement(name: str) -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return next(r for r in map(Requirement, project["dependencies"]) if r.name == name)


def test_the_keras_floor_is_past_the_known_safe_mode_bypasses() -> None:
    # Models are loaded with safe_mode on; Keras releases before 3.14 have
    # known ways around it.
    keras = requirement("keras")
    floors = [Version(spec.version) for spec in keras.specifier if spec.operator in (">=", ">")]
    assert floors and min(floors) >= Version("3.14"), keras
    assert Version(version("keras")) in keras.specifier  # what this environment runs
