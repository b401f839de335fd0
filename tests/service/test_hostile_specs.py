"""Hostile specs through POST /v1/jobs: a 422 at the spot, nothing queued,
and no Keras code reached (the spec is checked by pydantic alone)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from models.settings import Settings

BASE = {
    "input_shape": [4],
    "layers": [
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "sigmoid"},
    ],  # fmt: skip
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 4},
}


def hostile(path: list[Any], value: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(BASE))
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return spec


HOSTILE = {
    "TFSMLayer": (["layers", 0], {"type": "TFSMLayer", "filepath": "/tmp/saved_model"}),
    "lookup vocabulary": (["layers", 0], {"type": "string_lookup", "vocabulary": "/etc/passwd"}),
    "class_name key": (["layers", 0, "class_name"], "Lambda"),
    "module key": (["layers", 1, "module"], "os"),
    "registered_name key": (["layers", 1, "registered_name"], "Custom>Evil"),
    "URL as activation": (["layers", 0, "activation"], "https://evil.example/act.py"),
    "path as optimizer": (["compile", "optimizer"], "../../evil.py"),
    "path as loss": (["compile", "loss"], "/tmp/loss.py"),
    "enormous layer": (["layers", 0, "units"], 10**9),
    "unknown top-level key": (["callbacks"], [{"class_name": "LambdaCallback"}]),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_spec_is_a_422_and_nothing_is_queued(
    client: FlaskClient, auth: dict[str, str], settings: Settings, case: str
) -> None:
    path, value = HOSTILE[case]
    body = {"model": "m", "spec": hostile(path, value), "dataset": "0" * 24}
    response = client.post("/v1/jobs", headers=auth, json=body)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["details"], error
    assert error["details"][0]["loc"][:2] == ["spec", path[0]]
    queue = redis.Redis.from_url(settings.redis_url).llen(settings.queues.cpu)
    assert queue == 0
    assert client.get("/v1/jobs", headers=auth).json["jobs"] == []


def test_checking_every_hostile_spec_imports_no_keras() -> None:
    specs = [hostile(*HOSTILE[case]) for case in HOSTILE]
    script = (
        "import json, sys\n"
        "from pydantic import ValidationError\n"
        "from models.training.spec import ModelSpec\n"
        f"for spec in json.loads({json.dumps(json.dumps(specs))}):\n"
        "    try:\n"
        "        ModelSpec.model_validate(spec)\n"
        "    except ValidationError:\n"
        "        continue\n"
        "    raise SystemExit('accepted: %r' % spec)\n"
        "assert not any(name.split('.')[0] in ('keras', 'tensorflow', 'jax')\n"
        "               for name in sys.modules), 'a backend was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
