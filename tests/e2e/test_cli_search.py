"""The leaderboard `fitserve train` and `fitserve watch` print at the end of a
search or k-fold job: of jobs stored as the worker leaves them, and of a real
search the live worker trains."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sklearn.datasets import load_iris

from tests.e2e.conftest import Live
from tests.e2e.search_records import (
    MARKUP,
    RANK_ORDER,
    store_finished_folds,
    store_finished_search,
)
from tests.e2e.test_cli import fitserve


def test_watch_prints_a_search_s_leaderboard(live: Live) -> None:
    job_id = store_finished_search(live, "cli-search")
    run = fitserve(live, "watch", job_id)
    assert isinstance(run, subprocess.CompletedProcess)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "5 trials, ranked by val_loss (the folds' mean), lowest first:"
    assert lines[1].split() == ["rank", "trial", "learning_rate", "name", "seed", "val_loss",
                                "state", "epochs"]  # fmt: skip
    rows = [line.split() for line in lines[2:7]]
    assert rows[0][:3] == ["*", "1", "1"] and MARKUP in rows[0]
    assert [int(row[1]) for row in rows[1:]] == RANK_ORDER[1:]
    assert rows[0][-5:] == ["0.3", "±", "0.02", "succeeded", "6"]
    assert rows[-1][:2] == ["-", "3"] and rows[-1][-2:] == ["failed", "1"]
    assert lines[7] == "* best: trial 1, the one published"
    assert "Trial 1, 2-fold validation:" in lines
    assert "cli-search version 1" in run.stderr


def test_watch_prints_a_fold_job_s_metrics_fold_by_fold(live: Live) -> None:
    job_id = store_finished_folds(live, "cli-folds")
    run = fitserve(live, "watch", job_id)
    assert isinstance(run, subprocess.CompletedProcess)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "2-fold validation:",
        "metric    mean ± std  fold 1  fold 2",
        "loss      0.2 ± 0.02    0.18    0.22",
        "val_loss  0.3 ± 0.02    0.28    0.32",
    ]


def test_train_runs_a_search_and_prints_its_leaderboard(live: Live, tmp_path: Path) -> None:
    """A real search, trained by the live worker: 2 learning rates x 2
    optimizers (two groups), each trial scored on 2 folds."""
    iris = load_iris()
    rows = ["sepal_l,sepal_w,petal_l,petal_w,species"]
    rows += [",".join([*map(str, x), iris.target_names[y]])
             for x, y in zip(iris.data, iris.target, strict=True)]  # fmt: skip
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    spec = {
        "input_shape": [4],
        "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                   {"type": "dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "categorical_crossentropy",
                    "optimizer": {"name": "adam", "learning_rate": 0.01}, "metrics": ["accuracy"]},
        "fit": {"epochs": 4, "batch_size": 16, "folds": 2},
        "seed": 3,
    }  # fmt: skip
    search = {"method": "grid", "metric": "val_accuracy", "space": {
        "compile.optimizer.learning_rate": {"choice": [0.003, 0.03]},
        "compile.optimizer.name": {"choice": ["adam", "sgd"]},
    }}  # fmt: skip
    document = {"model": "cli-real-search", "spec": spec, "search": search}
    (tmp_path / "search.json").write_text(json.dumps(document))
    run = fitserve(live, "train", str(tmp_path / "search.json"), str(tmp_path / "iris.csv"))
    assert isinstance(run, subprocess.CompletedProcess)
    assert run.returncode == 0, run.stderr
    print(run.stdout)
    lines = run.stdout.splitlines()
    assert lines[0] == "4 trials, ranked by val_accuracy (the folds' mean), highest first:", lines
    assert lines[1].split() == ["rank", "trial", "learning_rate", "name", "val_accuracy",
                                "state", "epochs"]  # fmt: skip
    rows = [line.split() for line in lines[2:6]]
    assert rows[0][:2] == ["*", "1"] and [row[0] for row in rows[1:]] == ["2", "3", "4"]
    assert all(row[-2:] == ["succeeded", "4"] and "±" in row for row in rows), rows
    scores = [float(row[row.index("±") - 1]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    best = rows[0][2]
    assert lines[6] == f"* best: trial {best}, the one published"
    assert f"Trial {best}, 2-fold validation:" in lines
    assert "cli-real-search version 1" in run.stderr
