"""Search benchmark (issue 15), all through a real worker and API on a local
store (bench.deployment), in one run: a search job's trials side by side
against the same trials as plain jobs (`binary_rows`, `loss_gaps`), k-fold
validation against one fit (`folds_rows`), and a search's groups on one
worker and on two (`mixed_rows`).

    make bench-train                 (bench.train's tables, then this one)
    .venv/bin/python -m bench.train --only search
    .venv/bin/python -m bench.search [--repeats N] [--plain-jobs N]

Each figure is a ratio against a baseline measured in the same run: medians
of `repeats` runs, after a warm-up run of each kind (which compiles).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.deployment import Deployment, seconds
from bench.examples import EXAMPLES, FILES, ensure_data
from bench.vmap_floor import run_floor
from service.local_processes import BIN, Service, settings_environment, worker_answers

LEARNING_RATES = [float(f"{1e-4 * 1000 ** (step / 7):.3g}") for step in range(8)]  # 1e-4 .. 0.1
SEEDS = list(range(8))
GRID = {"method": "grid", "space": {"compile.optimizer.learning_rate": {"choice": LEARNING_RATES},
                                    "seed": {"choice": SEEDS}}}  # fmt: skip
MIXED = {"method": "grid", "space": {"layers.0.units": {"choice": [8, 16, 32, 64]},
                                     "fit.batch_size": {"choice": [10, 20]}}}  # fmt: skip
FOLDS = 5
SEARCH_TARGET = 4.0  # search job time / one trial's job time, at most
PLAIN_JOBS_TARGET = 10.0  # plain jobs' wall time / the search job's, at least
LOSS_GAP_TARGET = 1e-5
FOLDS_TARGET = 2.0  # k-fold job time / one fit's, at most
FOLDS_RUNS = 9


def example_spec(example: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / f"{example}.json").read_text())["spec"])


def with_params(spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`spec` with a trial's drawn values written at their dotted paths; an
    optimizer given by name becomes an object to take its learning rate."""
    result = copy.deepcopy(spec)
    for path, value in params.items():
        *parents, last = path.split(".")
        node: Any = result
        for part in parents:
            key: Any = int(part) if part.isdigit() else part
            if isinstance(node[key], str):
                node[key] = {"name": node[key]}
            node = node[key]
        node[int(last) if last.isdigit() else last] = value
    return result


def at(job: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(job[key].replace("Z", "+00:00"))


@dataclass
class Submitted:
    job_id: str
    submitted_at: datetime


class Client:
    """Jobs posted as JSON against datasets stored once, and their records."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.datasets: dict[str, str] = {}

    def dataset(self, example: str) -> str:
        if example not in self.datasets:
            filename, media_type = FILES[example]
            response = self.deployment.http.post(
                f"{self.deployment.url}/v1/datasets",
                data=(ensure_data() / filename).read_bytes(),
                headers={"Content-Type": media_type},
            )
            response.raise_for_status()
            self.datasets[example] = response.json()["id"]
        return self.datasets[example]

    def submit(self, model: str, example: str, spec: dict[str, Any],
               search: dict[str, Any] | None = None) -> Submitted:  # fmt: skip
        body: dict[str, Any] = {"model": model, "spec": spec, "dataset": self.dataset(example)}
        if search is not None:
            body["search"] = search
        submitted_at = datetime.now(UTC)
        response = self.deployment.http.post(f"{self.deployment.url}/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        return Submitted(response.json()["id"], submitted_at)

    def wait(self, submitted: Submitted) -> dict[str, Any]:
        url = f"{self.deployment.url}/v1/jobs/{submitted.job_id}"
        while (job := self.deployment.http.get(url).json())["state"] not in (
            "succeeded", "failed", "cancelled"):  # fmt: skip
            time.sleep(0.1)
        assert job["state"] == "succeeded", (submitted.job_id, job["error"])
        return dict(job)

    def run(self, model: str, example: str, spec: dict[str, Any],
            search: dict[str, Any] | None = None) -> tuple[dict[str, Any], float]:  # fmt: skip
        """One job to its end: its record and its wall time (submit -> finished_at)."""
        submitted = self.submit(model, example, spec, search)
        job = self.wait(submitted)
        return job, (at(job, "finished_at") - submitted.submitted_at).total_seconds()

    def fit_seconds(self, job: dict[str, Any]) -> float:
        """The published model's fit time (its `timings`): a plain job's
        training, a search's winning group, a k-fold job's folds and refit
        (side by side) or a search's refit on every row."""
        result = job["result"]
        url = f"{self.deployment.url}/v1/models/{result['model']}/versions/{result['version']}"
        metadata = self.deployment.http.get(f"{url}/metadata").json()["metadata"]
        return float(metadata["timings"]["fit_s"])


def rounds(repeats: int, first: Any, second: Any) -> tuple[list[Any], list[Any]]:
    """`repeats` runs of each, the order swapped each round so that neither
    always runs right after the other (callers warm both up first)."""
    firsts, seconds_ = [], []
    for round_ in range(repeats):
        if round_ % 2 == 0:
            firsts.append(first())
            seconds_.append(second())
        else:
            seconds_.append(second())
            firsts.append(first())
    return firsts, seconds_


def binary_rows(client: Client, repeats: int, plain_jobs: int) -> dict[str, Any]:
    """The seed's binary program (examples/breast_cancer.json), shuffling off
    so that a trial and its plain job see the same batches: one trial's plain
    job against a 64-trial grid search job (8 learning rates x 8 seeds), each
    job's record started_at -> finished_at; then the 64 trials' specs (the
    record's `params` written in) as plain jobs queued at once on the same
    worker against the search job, submit -> last finished_at, once
    (`plain_jobs` fewer: a random few, extrapolated, and said so). The compute
    floor (bench.vmap_floor, the service stopped) sets the median epoch of 64
    trials side by side against one trial's, fitserve's and a vmapped MLP of
    the same layers written by hand in JAX: what 64 trials cost at the least."""
    spec = example_spec("breast_cancer")
    spec["fit"]["shuffle"] = False
    searches: list[dict[str, Any]] = []

    def search() -> tuple[float, float, float]:
        job, wall = client.run("bench-search", "breast_cancer", spec, GRID)
        searches.append(job)
        return seconds(job), wall, client.fit_seconds(job)

    search()  # the warm-up; its record names the trials' params, which plain jobs take
    trials = searches[0]["trials"]
    one_spec = with_params(spec, trials[0]["params"])

    def one_trial() -> tuple[float, float]:
        job = client.run("bench-one-trial", "breast_cancer", one_spec)[0]
        return seconds(job), client.fit_seconds(job)

    one_trial()
    ones, search_runs = rounds(repeats, one_trial, search)
    chosen = sorted(random.Random(0).sample(range(len(trials)), min(plain_jobs, len(trials))))
    trial_specs = [with_params(spec, trials[index]["params"]) for index in chosen]
    queued = [client.submit("bench-trial-jobs", "breast_cancer", trial_spec)
              for trial_spec in trial_specs]  # fmt: skip
    plain = [client.wait(submitted) for submitted in queued]
    plain_wall = (max(at(job, "finished_at") for job in plain)
                  - queued[0].submitted_at).total_seconds()  # fmt: skip
    return {
        "trials": len(trials),
        "one_s": statistics.median(job_s for job_s, _ in ones),
        "one_fit_s": statistics.median(fit for _, fit in ones),
        "search_s": statistics.median(job_s for job_s, _, _ in search_runs),
        "search_wall_s": statistics.median(wall for _, wall, _ in search_runs),
        "search_fit_s": statistics.median(fit for _, _, fit in search_runs),
        "plain_jobs": len(plain),
        "plain_wall_s": plain_wall * len(trials) / len(plain),
        "plain_job_s": statistics.median(seconds(job) for job in plain),
        "compared": [
            {"spec": trial_spec,
             "rate": searches[-1]["trials"][index]["params"]["compile.optimizer.learning_rate"],
             "search_loss": searches[-1]["trials"][index]["metrics"]["loss"],
             "plain_loss": job["result"]["metrics"]["loss"]}
            for index, trial_spec, job in zip(chosen, trial_specs, plain, strict=True)
        ],
    }  # fmt: skip


def loss_gaps(compared: list[dict[str, Any]]) -> dict[str, Any]:
    """Each trial's final loss side by side (the search) against alone (its
    plain job), and the noise floor: the trial alone, in a process of its own,
    under XLA's default threads against on one thread. Where training is
    chaotic, float rounding (a vmapped matmul, or a matmul split over other
    threads, sums in another order) grows over the epochs into gaps far over
    the target; by learning rate, how far each kind goes."""
    specs = {"specs": [trial["spec"] for trial in compared]}
    threaded = run_floor("alone", specs)
    one_thread = run_floor("alone", specs, one_thread=True)
    by_rate: dict[float, dict[str, Any]] = {}
    for trial, default_loss, single_loss in zip(compared, threaded, one_thread, strict=True):
        vmapped = abs(trial["search_loss"] - trial["plain_loss"])
        threads = abs(default_loss - single_loss)
        row = by_rate.setdefault(
            trial["rate"],
            {"trials": 0, "vmapped": 0.0, "threads": 0.0, "vmapped_within": 0, "threads_within": 0},
        )
        row["trials"] += 1
        row["vmapped"] = max(row["vmapped"], vmapped)
        row["threads"] = max(row["threads"], threads)
        row["vmapped_within"] += vmapped < LOSS_GAP_TARGET
        row["threads_within"] += threads < LOSS_GAP_TARGET
    for row in by_rate.values():
        # Matched: one thread against two moves this learning rate's trials
        # over the target too, by at least a tenth as much as vmapping does.
        row["matched"] = row["vmapped_within"] == row["trials"] or (
            row["threads"] >= LOSS_GAP_TARGET and row["threads"] >= row["vmapped"] / 10
        )
    return {
        "by_rate": dict(sorted(by_rate.items())),
        "max_vmapped": max(row["vmapped"] for row in by_rate.values()),
        "max_threads": max(row["threads"] for row in by_rate.values()),
        "vmapped_within": sum(row["vmapped_within"] for row in by_rate.values()),
        "threads_within": sum(row["threads_within"] for row in by_rate.values()),
        # A check that the subprocess trains as the worker's plain job does.
        "same_as_plain_job": sum(trial["plain_loss"] == loss
                                 for trial, loss in zip(compared, threaded, strict=True)),
        "matched": all(row["matched"] for row in by_rate.values()),
    }  # fmt: skip


def folds_rows(client: Client, repeats: int) -> dict[str, Any]:
    """The iris program with 5-fold validation (the refit on every row, beside
    the folds, included) against one fit of it, and each one's training share
    from its model's `timings`: at least FOLDS_RUNS runs of each, as the times
    of sub-second jobs vary widely between runs on a shared host."""
    repeats = max(repeats, FOLDS_RUNS)
    spec = example_spec("iris")
    folds_spec = copy.deepcopy(spec)
    for absent in ("validation_split", "early_stopping"):
        folds_spec["fit"].pop(absent, None)
    folds_spec["fit"]["folds"] = FOLDS

    def one_fit() -> tuple[float, float]:
        job = client.run("bench-iris", "iris", spec)[0]
        return seconds(job), client.fit_seconds(job)

    def folds() -> tuple[float, float]:
        job = client.run("bench-iris-folds", "iris", folds_spec)[0]
        return seconds(job), client.fit_seconds(job)

    one_fit(), folds()
    ones, fold_runs = rounds(repeats, one_fit, folds)
    return {
        "spec": spec,
        "runs": repeats,
        "each": [
            (one_s, folds_s) for (one_s, _), (folds_s, _) in zip(ones, fold_runs, strict=True)
        ],
        "one_s": statistics.median(job_s for job_s, _ in ones),
        "one_fit_s": statistics.median(fit for _, fit in ones),
        "folds_s": statistics.median(job_s for job_s, _ in fold_runs),
        "folds_fit_s": statistics.median(fit for _, fit in fold_runs),
    }


def mixed_walls(client: Client, repeats: int) -> tuple[list[float], int]:
    """A warm-up, then `repeats` runs of the mixed-shape search: wall times, groups."""
    spec = example_spec("breast_cancer")
    job, _ = client.run("bench-mixed", "breast_cancer", spec, MIXED)
    walls = [client.run("bench-mixed", "breast_cancer", spec, MIXED)[1] for _ in range(repeats)]
    return walls, len({trial["group"] for trial in job["trials"]})


def start_worker(deployment: Deployment, log_path: Path, core: int | None = None) -> Service:
    """A `fitserve-worker` with the deployment's settings and queue; with
    `core`, started under `taskset -c core`: XLA sizes its thread pool by the
    cores the process may run on, so it trains on one thread, as on a 1-core host."""
    port = urlsplit(deployment.url).port
    assert port is not None, deployment.url
    environment = settings_environment(deployment.settings, port)
    pinning = [] if core is None else ["taskset", "-c", str(core)]
    worker = Service([*pinning, str(BIN / "fitserve-worker")], environment, log_path)
    worker.wait_until(worker_answers(deployment.settings.redis_url, worker.process.pid), 180)
    if core is not None:
        assert os.sched_getaffinity(worker.process.pid) == {core}, worker.process.pid
    return worker


def mixed_rows(client: Client, folder: Path, repeats: int) -> dict[str, Any]:
    """A search of 8 groups (layer width x batch size: no two share a program)
    on the deployment's worker, then with a second worker process of the same
    deployment (same store, Redis and queue), under XLA's default threads as
    `fitserve-worker` starts (on a small machine the two share its cores,
    which bounds the gain); then on one worker pinned to core 0, then with a
    second pinned to core 1 (`taskset -c N`, the unpinned workers stopped
    first), as one and two 1-core hosts would be."""
    deployment = client.deployment
    walls, groups = mixed_walls(client, repeats)
    rows: dict[str, Any] = {"groups": groups, "one_worker": walls}
    second = start_worker(deployment, folder / "worker-2.log")
    try:
        rows["two_workers"] = mixed_walls(client, repeats)[0]
    finally:
        second.stop()
    deployment.worker.stop()
    # The pinned worker stands in for the deployment's: Deployment.stop stops it.
    deployment.worker = start_worker(deployment, folder / "worker-core0.log", core=0)
    rows["one_pinned"] = mixed_walls(client, repeats)[0]
    second = start_worker(deployment, folder / "worker-core1.log", core=1)
    try:
        rows["two_pinned"] = mixed_walls(client, repeats)[0]
    finally:
        second.stop()
    return rows


def run(repeats: int = 3, plain_jobs: int = 64) -> None:
    ensure_data()
    folder = Path(tempfile.mkdtemp(prefix="fitserve-bench-search-"))
    deployment = Deployment.start("local", folder / "local", None)
    try:
        deployment.wait_until_ready()
        client = Client(deployment)
        binary = binary_rows(client, repeats, plain_jobs)
        folds = folds_rows(client, repeats)
        mixed = mixed_rows(client, folder, repeats)
    except BaseException:
        print(f"(logs kept in {folder})", file=sys.stderr)
        raise
    finally:
        deployment.stop()
    shutil.rmtree(folder, ignore_errors=True)
    # In processes of their own, the service stopped: nothing else trains meanwhile.
    gaps = loss_gaps(binary["compared"])
    spec = example_spec("breast_cancer")
    spec["fit"]["shuffle"] = False
    floor = run_floor("epochs", {"spec": spec, "search": GRID})
    folds["phases"] = run_floor("folds", {"spec": folds["spec"], "folds": FOLDS})
    report(binary, gaps, floor, folds, mixed, repeats)


def report(binary: dict[str, Any], gaps: dict[str, Any], floor: dict[str, Any],
           folds: dict[str, Any], mixed: dict[str, Any], repeats: int) -> None:  # fmt: skip
    import jax
    import keras

    print(f"\nsearch table. machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, Keras {keras.__version__}, JAX {jax.__version__}; "
          f"service backend: jax; store: local folder; medians of {repeats} runs after a "
          f"warm-up of each")  # fmt: skip
    trials = binary["trials"]
    compared = binary["plain_jobs"]
    search_ratio = binary["search_s"] / binary["one_s"]
    plain_ratio = binary["plain_wall_s"] / binary["search_wall_s"]
    folds_ratio = folds["folds_s"] / folds["one_s"]
    medians = {label: statistics.median(mixed[label])
               for label in ("one_worker", "two_workers", "one_pinned", "two_pinned")}  # fmt: skip
    mixed_ratio = medians["one_worker"] / medians["two_workers"]
    pinned_ratio = medians["one_pinned"] / medians["two_pinned"]
    fitserve_floor, hand_floor = floor["fitserve"], floor["hand_written"]
    fitserve_epochs = fitserve_floor["all"] / fitserve_floor["one"]
    hand_epochs = hand_floor["all"] / hand_floor["one"]
    extrapolated = compared < trials
    plain_note = (f"EXTRAPOLATED: {compared} of the {trials} jobs run, their wall "
                  f"time x {trials / compared:.1f}" if extrapolated
                  else f"all {trials} run, once")  # fmt: skip
    print(f"  binary program, {trials} trials (8 learning rates x 8 seeds), shuffle off")
    print(f"    a. one trial's job (started -> finished):       {binary['one_s']:8.2f} s"
          f"   (its fit {binary['one_fit_s']:.2f} s)")  # fmt: skip
    print(f"    b. the {trials}-trial search job (started -> finished): {binary['search_s']:8.2f} s"
          f"   = {search_ratio:.2f}x (a)  (target <= {SEARCH_TARGET:g}x; the {trials} trials' "
          f"fit {binary['search_fit_s']:.2f} s)")  # fmt: skip
    print(f"       the search job, submit -> finished:           {binary['search_wall_s']:8.2f} s")
    print(f"       compute floor, median epoch (in a process of its own, after a warm-up; "
          f"median of {floor['rounds']} rounds taking turns): "
          f"fitserve 1 trial (train) {fitserve_floor['one'] * 1000:.2f} ms, {trials} side by "
          f"side (train_group) {fitserve_floor['all'] * 1000:.2f} ms = {fitserve_epochs:.1f}x; "
          f"the same network vmapped by hand in JAX {hand_floor['one'] * 1000:.2f} ms, "
          f"{hand_floor['all'] * 1000:.2f} ms = {hand_epochs:.1f}x")  # fmt: skip
    print(f"    c. {trials} plain jobs, first submit -> last finished: "
          f"{binary['plain_wall_s']:8.2f} s"
          f"   = {plain_ratio:.1f}x (b)  (target >= {PLAIN_JOBS_TARGET:g}x; {plain_note}; "
          f"median plain job {binary['plain_job_s']:.2f} s)")  # fmt: skip
    print(f"    d. |final loss, trial - its plain job| (vmapped) over {compared} trials: largest "
          f"{gaps['max_vmapped']:.2e}, {gaps['vmapped_within']} of {compared} within "
          f"{LOSS_GAP_TARGET:g} (the target); noise floor, each trial alone in a process of "
          f"its own, XLA's default threads vs one thread: largest {gaps['max_threads']:.2e}, "
          f"{gaps['threads_within']} of {compared} within {LOSS_GAP_TARGET:g} (of those "
          f"alone on default threads, {gaps['same_as_plain_job']} of {compared} have their "
          f"plain job's loss exactly). By learning rate:")  # fmt: skip
    print(f"         {'rate':<9} {'trials':>6} {'vmapped max':>12} {'within':>6} "
          f"{'threads max':>12} {'within':>6}")  # fmt: skip
    for rate, row in gaps["by_rate"].items():
        print(f"         {rate:<9g} {row['trials']:6d} {row['vmapped']:12.2e} "
              f"{row['vmapped_within']:6d} {row['threads']:12.2e} {row['threads_within']:6d}"
              f"{'' if row['matched'] else '   vmapped gap NOT matched by the floor'}")  # fmt: skip
    print(f"  iris program, {FOLDS}-fold validation against one fit (started -> finished; "
          f"medians of {folds['runs']} runs)")  # fmt: skip
    print(f"    one fit: {folds['one_s']:.2f} s (its training {folds['one_fit_s']:.2f} s); "
          f"{FOLDS}-fold job: {folds['folds_s']:.2f} s = {folds_ratio:.2f}x  (target <= "
          f"{FOLDS_TARGET:g}x); its training, {FOLDS} folds and the refit side by side, "
          f"{folds['folds_fit_s']:.2f} s")  # fmt: skip
    one, both = folds["phases"]["one"], folds["phases"]["folds"]
    print(f"    where it goes (in a process of its own, compilation cache on, medians of "
          f"{folds['phases']['rounds']} after a warm-up): to the end of the first epoch "
          f"(set-up, tracing and lowering the programs, which the cache does not save, one "
          f"epoch) one fit {one['first_s']:.3f} s, {FOLDS} folds + refit "
          f"{both['first_s']:.3f} s = {both['first_s'] / one['first_s']:.2f}x; each epoch "
          f"after it {one['epoch_s'] * 1000:.2f} ms, {both['epoch_s'] * 1000:.2f} ms = "
          f"{both['epoch_s'] / one['epoch_s']:.2f}x ({FOLDS + 1} models' arithmetic)")  # fmt: skip
    print(
        "      each run, one fit / k-fold job: "
        + ", ".join(f"{one:.2f} / {both:.2f} s" for one, both in folds["each"])
    )
    print(f"  mixed-shape search on the binary program ({mixed['groups']} groups), "
          f"submit -> finished; each worker --concurrency=1")  # fmt: skip
    print(f"    unpinned (XLA's default threads; the two share {os.cpu_count()} cores): one "
          f"worker {medians['one_worker']:.2f} s, two {medians['two_workers']:.2f} s = "
          f"{mixed_ratio:.2f}x faster")  # fmt: skip
    print(f"    pinned (taskset, one core each, as two 1-core hosts): one worker on core 0 "
          f"{medians['one_pinned']:.2f} s, two (cores 0 and 1) {medians['two_pinned']:.2f} s "
          f"= {pinned_ratio:.2f}x faster")  # fmt: skip
    for label in medians:
        runs = ", ".join(f"{wall:.2f}" for wall in mixed[label])
        print(f"      {label.replace('_', ' ')}, each run: {runs} s")

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    matched_over = sum(row["trials"] - row["vmapped_within"]
                       for row in gaps["by_rate"].values() if row["matched"])  # fmt: skip
    floor_note = ""
    if matched_over:
        floor_note = (f"; {matched_over} others at learning rates where the thread-count "
                      f"floor is as large (its largest {gaps['max_threads']:.1e})")  # fmt: skip
    unmatched = [f"lr {rate:g}: {row['trials'] - row['vmapped_within']} over, largest "
                 f"{row['vmapped']:.1e} vs floor {row['threads']:.1e}"
                 for rate, row in gaps["by_rate"].items() if not row["matched"]]  # fmt: skip
    if unmatched:
        floor_note += f"; NOT matched by the floor: {'; '.join(unmatched)}"
    rows = [
        (f"{trials}-trial search job vs one trial's job (started -> finished)",
         f"{binary['one_s']:.2f}", f"{binary['search_s']:.2f}", f"{search_ratio:.2f}x",
         f"<= {SEARCH_TARGET:g}x", met(search_ratio <= SEARCH_TARGET)),
        (f"compute floor: median epoch, {trials} trials vs 1 (fitserve train_group vs train; "
         f"hand-written vmapped JAX: {hand_floor['one'] * 1000:.2f} -> "
         f"{hand_floor['all'] * 1000:.1f} ms = {hand_epochs:.1f}x)",
         f"{fitserve_floor['one'] * 1000:.2f} ms", f"{fitserve_floor['all'] * 1000:.1f} ms",
         f"{fitserve_epochs:.1f}x", "", ""),
        (f"{trials} plain jobs vs the search job (submit -> last finished)"
         + (" (extrapolated)" if extrapolated else ""),
         f"{binary['plain_wall_s']:.2f}", f"{binary['search_wall_s']:.2f}",
         f"{plain_ratio:.1f}x faster", f">= {PLAIN_JOBS_TARGET:g}x",
         met(plain_ratio >= PLAIN_JOBS_TARGET)),
        (f"final loss, each search trial vs its plain job: largest gap; "
         f"{gaps['vmapped_within']} of {compared} within {LOSS_GAP_TARGET:g}{floor_note}",
         "", "", f"{gaps['max_vmapped']:.1e}", f"< {LOSS_GAP_TARGET:g}",
         met(gaps["max_vmapped"] < LOSS_GAP_TARGET)),
        (f"{FOLDS}-fold iris job vs one fit (started -> finished)",
         f"{folds['one_s']:.2f}", f"{folds['folds_s']:.2f}", f"{folds_ratio:.2f}x",
         f"<= {FOLDS_TARGET:g}x", met(folds_ratio <= FOLDS_TARGET)),
        (f"{mixed['groups']}-group search, two workers vs one, sharing "
         f"{os.cpu_count()} cores (submit -> finished)",
         f"{medians['one_worker']:.2f}", f"{medians['two_workers']:.2f}",
         f"{mixed_ratio:.2f}x faster", "", ""),
        (f"{mixed['groups']}-group search, two workers vs one, each pinned to its own core "
         f"(submit -> finished)",
         f"{medians['one_pinned']:.2f}", f"{medians['two_pinned']:.2f}",
         f"{pinned_ratio:.2f}x faster", "", ""),
    ]  # fmt: skip
    print("\n| measure | baseline s | fitserve s | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plain-jobs", type=int, default=64,
                        help="how many of the 64 trials run as plain jobs "
                             "(fewer: their time is extrapolated)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each, after a warm-up")  # fmt: skip
    add_arguments(parser)
    options = parser.parse_args()
    run(options.repeats, options.plain_jobs)


if __name__ == "__main__":
    main()
