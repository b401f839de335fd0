"""The `fitserve` command against the live service, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from service.local_processes import BIN
from tests.conftest import API_KEY
from tests.e2e.conftest import Live

SPEC = {
    "input_shape": [4],
    "layers": [
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ],  # fmt: skip
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
    "fit": {"epochs": 30, "batch_size": 8},
    "seed": 3,
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    iris = load_iris()
    rows = ["sepal_l,sepal_w,petal_l,petal_w,species"]
    rows += [",".join([*map(str, x), iris.target_names[y]])
             for x, y in zip(iris.data, iris.target, strict=True)]  # fmt: skip
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "samples.csv").write_text("5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    (tmp_path / "spec.json").write_text(json.dumps({"model": "cli-iris", "spec": SPEC}))
    long = {**SPEC, "fit": {"epochs": 5000, "batch_size": 8}}
    (tmp_path / "long.json").write_text(json.dumps(long))
    return tmp_path


Finished = subprocess.CompletedProcess[str]


def fitserve(live: Live, *arguments: str, key: str = API_KEY, cwd: Path | None = None,
             background: bool = False) -> Finished | subprocess.Popen[str]:  # fmt: skip
    environment = {**os.environ, "FITSERVE_URL": live.base_url, "FITSERVE_API_KEY": key,
                   "COLUMNS": "200"}  # fmt: skip
    command = [str(BIN / "fitserve"), *arguments]
    if background:
        return subprocess.Popen(command, env=environment, cwd=cwd, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    return subprocess.run(command, env=environment, cwd=cwd, text=True, capture_output=True,
                          timeout=300)  # fmt: skip


def test_train_follows_the_job_then_lists_and_predicts(live: Live, files: Path) -> None:
    trained = fitserve(live, "train", "spec.json", "iris.csv", "--target", "species", cwd=files)
    assert isinstance(trained, subprocess.CompletedProcess)
    assert trained.returncode == 0, trained.stderr
    assert "epoch 30/30" in trained.stderr and "accuracy" in trained.stderr
    assert "succeeded: cli-iris version 1" in trained.stderr

    jobs = fitserve(live, "jobs", "--model", "cli-iris")
    assert (
        jobs.returncode == 0
        and "cli-iris" in str(jobs.stdout)
        and "succeeded" in str(jobs.stdout)
        and " cpu " in str(jobs.stdout)
    )
    models = fitserve(live, "models")
    assert models.returncode == 0 and "cli-iris" in str(models.stdout)

    predicted = fitserve(live, "predict", "cli-iris", str(files / "samples.csv"))
    assert predicted.returncode == 0, predicted.stderr
    assert "setosa" in str(predicted.stdout) and "virginica" in str(predicted.stdout)
    written = fitserve(live, "predict", "cli-iris", str(files / "samples.csv"),
                       "-o", str(files / "out.npy"))  # fmt: skip
    assert written.returncode == 0, written.stderr
    outputs = np.load(files / "out.npy")
    assert outputs.shape == (2, 3)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)

    evaluated = fitserve(live, "evaluate", "cli-iris", "1", "--dataset", "iris.csv",
                         "--target", "species", cwd=files)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert "loss" in str(evaluated.stdout) and "accuracy" in str(evaluated.stdout)
    assert "150 rows" in str(evaluated.stderr)
    dataset = str(evaluated.stderr).split("dataset ")[1].split(":")[0]
    answer = fitserve(live, "evaluate", "cli-iris", "--dataset", dataset, "--json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(str(answer.stdout))["rows"] == 150


def test_a_cancelled_job_makes_train_exit_non_zero(live: Live, files: Path) -> None:
    follower = fitserve(live, "train", "long.json", "iris.csv", "--target", "species",
                        "--model", "cli-long", cwd=files, background=True)  # fmt: skip
    assert isinstance(follower, subprocess.Popen)
    job_id = None
    deadline = time.monotonic() + 120
    while job_id is None and time.monotonic() < deadline and follower.poll() is None:
        running = live.http.get(live.url("/v1/jobs"), params={"model": "cli-long"}).json()
        job_id = next((job["id"] for job in running["jobs"] if job["state"] == "running"), None)
        time.sleep(0.1)
    assert job_id is not None, follower.communicate()
    cancelled = fitserve(live, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    _, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 1
    assert "cancelled" in stderr


def test_refusals_exit_2_with_the_api_s_message(live: Live, files: Path) -> None:
    anonymous = fitserve(live, "models", key="wrong")
    assert anonymous.returncode == 2 and "401" in str(anonymous.stderr)
    mismatch = {**SPEC, "input_shape": [5]}
    (files / "bad.json").write_text(json.dumps(mismatch))
    refused = fitserve(live, "train", "bad.json", "iris.csv", "--target", "species",
                       "--model", "cli-bad", cwd=files)  # fmt: skip
    assert refused.returncode == 2
    assert "422" in str(refused.stderr) and "input_shape" in str(refused.stderr)
    unknown = fitserve(live, "cancel", "0" * 32)
    assert unknown.returncode == 2 and "404" in str(unknown.stderr)
