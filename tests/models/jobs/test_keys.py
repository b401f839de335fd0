"""The job store's key scheme, spelled out: a running deployment's data is
written under these keys, so a release that renames one loses it."""

from __future__ import annotations

from models.jobs.keys import JobKeys

JOB = "0123456789abcdef0123456789abcdef"


def test_each_key_keeps_its_name() -> None:
    keys = JobKeys("fs")
    assert keys.job(JOB) == f"fs:job:{JOB}"
    assert keys.history(JOB) == f"fs:job:{JOB}:history"
    assert keys.lease(JOB) == f"fs:lease:{JOB}"
    assert keys.running == "fs:running"
    assert keys.queued_by_send == "fs:queued-by-send"
    assert keys.gpu_by_choice == "fs:gpu-by-choice"
    assert keys.period_marker("redeliver", JOB) == f"fs:redeliver:{JOB}"
    assert keys.index == "fs:jobs"
    assert keys.state_index("queued") == "fs:jobs:state:queued"
    assert keys.model_index("iris") == "fs:jobs:model:iris"
    assert keys.models == "fs:jobs:models"
    assert keys.indexed == "fs:jobs:indexed"
    assert keys.training("gpu:0") == "fs:training:gpu:0"
    assert keys.devices == "fs:training-devices"


def test_a_state_changing_script_gets_the_history_the_index_and_every_state() -> None:
    keys = JobKeys("fs")
    states = ["queued", "running", "succeeded", "failed", "cancelled"]
    assert keys.state_indexes == [f"fs:jobs:state:{state}" for state in states]
    assert keys.index_keys(JOB) == [f"fs:job:{JOB}:history", "fs:jobs", *keys.state_indexes]
    assert keys.state_change(JOB) == [f"fs:job:{JOB}", f"fs:lease:{JOB}", "fs:running",
                                      "fs:queued-by-send", *keys.index_keys(JOB)]  # fmt: skip


def test_a_training_key_names_its_device() -> None:
    keys = JobKeys("fs:with:colons")
    assert keys.device_of(keys.training("gpu:1")) == "gpu:1"
