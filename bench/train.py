"""Training benchmark: the four example programs as the plain Keras script and
through the service, in one run; then bench.search's table (`--only` runs one).

    make bench-train        (or: .venv/bin/python -m bench.train [--repeats N]
                             [--service-repeats N] [--examples NAME ...]
                             [--stores local s3] [--only train|search])

The plain script (bench/plain_fit.py) runs under TensorFlow, what a user's
`pip install tensorflow` gives, and under JAX, the service's backend. A
service job's time is its record's `started_at` to `finished_at`; the first
of its `service-repeats` compiles. The service runs with its store in a local
folder and in a bucket of a real S3 server (`store_report`; target: S3 within
+20% of local).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import search
from bench.deployment import Deployment, seconds
from bench.examples import FILES, ensure_data
from bench.stores import STORE_NAMES, STORES, start_seaweedfs

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax")
S3_TARGET = 1.20  # S3 job time / local job time


def plain(backend: str, example: str, repeats: int) -> dict[str, Any]:
    """bench/plain_fit.py: `fit` on numpy arrays with the spec's arguments,
    timed alone, in a process of its own under `backend`."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.plain_fit", backend, example, str(repeats)],
        capture_output=True, text=True, check=True, env=environment, cwd=ROOT,
    )  # fmt: skip
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def service_runs(deployments: list[Deployment], example: str,
                 repeats: int) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """`repeats` jobs per store, alternating: A B, B A, A B, ... so that each
    store runs first in half the rounds (the first round compiles in both)."""
    jobs: dict[str, list[dict[str, Any]]] = {d.store: [] for d in deployments}
    for round_ in range(repeats):
        for deployment in deployments if round_ % 2 == 0 else deployments[::-1]:
            jobs[deployment.store].append(deployment.run_job(example))
    return jobs


def metric_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in sorted(metrics.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each plain script and search table job")  # fmt: skip
    parser.add_argument("--service-repeats", type=int, default=5,
                        help="jobs per program and store (the first compiles)")  # fmt: skip
    parser.add_argument("--examples", nargs="*", default=list(FILES))
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES),
                        help="the service's store (default: both, compared)")  # fmt: skip
    parser.add_argument("--only", choices=("train", "search"),
                        help="only the programs' tables, or only the search table")  # fmt: skip
    search.add_arguments(parser)
    options = parser.parse_args()
    if options.only != "search":
        train_tables(options)
    if options.only != "train":
        search.run(options.repeats, options.plain_jobs)


def train_tables(options: argparse.Namespace) -> None:
    stores = list(dict.fromkeys(options.stores))
    ensure_data()
    folder = Path(tempfile.mkdtemp(prefix="fitserve-bench-train-"))
    server = start_seaweedfs(folder / "seaweedfs") if "s3" in stores else None
    deployments: list[Deployment] = []
    try:
        for store in stores:
            store_server = server if store == "s3" else None
            deployments.append(Deployment.start(store, folder / store, store_server))
        for deployment in deployments:
            deployment.wait_until_ready()
        rows = []
        for example in options.examples:
            baselines = {backend: plain(backend, example, options.repeats)
                         for backend in BACKENDS}  # fmt: skip
            jobs = service_runs(deployments, example, options.service_repeats)
            rows.append((example, baselines, jobs))
        for deployment in deployments:
            deployment.check_store()
    except BaseException:
        print(f"(logs kept in {folder})", file=sys.stderr)
        raise
    finally:
        for deployment in deployments:
            deployment.stop()
        if server is not None:
            server.stop()
    shutil.rmtree(folder, ignore_errors=True)
    report(rows, options.repeats, options.service_repeats, stores)


Row = tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]


def report(rows: list[Row], repeats: int, service_repeats: int, stores: list[str]) -> None:
    import keras

    main_store = stores[0]
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, Keras {keras.__version__}; service backend: jax "
          f"(fused training); medians of {repeats} (plain) and {service_repeats} (service, "
          f"the first included); service store: {STORE_NAMES[main_store]}")  # fmt: skip
    print(f"\n{'example':14} {'plain TF s':>10} {'plain JAX s':>11} {'service s':>10} "
          f"{'(first)':>8} {'vs TF':>7} {'vs JAX':>7}")  # fmt: skip
    for example, baselines, by_store in rows:
        tf, jax = baselines["tensorflow"]["fit_s"], baselines["jax"]["fit_s"]
        times = [seconds(job) for job in by_store[main_store]]
        median = statistics.median(times)
        print(f"{example:14} {tf:10.2f} {jax:11.2f} {median:10.2f} {times[0]:8.2f} "
              f"{tf / median:6.1f}x {jax / median:6.1f}x")  # fmt: skip
    for store in stores:
        waits = [seconds(job, "created_at", "started_at") for *_, jobs in rows
                 for job in jobs[store]]  # fmt: skip
        print(
            f"\nqueue to start (created_at -> started_at, idle worker), {STORE_NAMES[store]}: "
            f"median {statistics.median(waits) * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms"
        )
    if set(stores) == set(STORES):
        store_report(rows, service_repeats)
    print("\nfinal training metrics")
    for example, baselines, by_store in rows:
        print(f"  {example}")
        for backend in BACKENDS:
            print(f"    plain {backend:10} {metric_text(baselines[backend]['metrics'])}")
        for store in stores:
            jobs = by_store[store]
            label = f"service ({store})"
            print(f"    {label:16} {metric_text(jobs[-1]['result']['metrics'])}")
            tf_loss = baselines["tensorflow"]["metrics"]["loss"]
            loss = jobs[-1]["result"]["metrics"]["loss"]
            print(f"    service ({store}) loss / plain TF loss: {loss / tf_loss:.3f} "
                  f"(target <= 1.10)")  # fmt: skip


def store_report(rows: list[Row], repeats: int) -> None:
    """Local folder against S3 bucket (SeaweedFS started here on loopback, each
    store with its own worker and API, their jobs alternating so the machine's
    noise hits both alike): job time (started_at -> finished_at, loading the
    data, training, saving and publishing the model) and the client's POST
    (upload, dataset stored, job queued)."""
    warm = repeats > 1  # the first job of each store compiles: left out when others ran
    which = f"medians of the {repeats - 1} after the first" if warm else "one run each"
    print(f"\nservice job time by store (started_at -> finished_at; {which}, the first "
          f"compiles; jobs alternate between the stores)")  # fmt: skip
    print(f"{'example':14} {'local s':>8} {'S3 s':>8} {'S3-local ms':>12} {'S3/local':>9} "
          f"{'(first local':>13} {'S3)':>6} {'POST local ms':>14} {'POST S3 ms':>11}")  # fmt: skip
    ratios = []
    for example, _, by_store in rows:
        times = {store: [seconds(job) for job in jobs] for store, jobs in by_store.items()}
        medians = {store: statistics.median(ts[1:] if warm else ts) for store, ts in times.items()}
        posts = {store: statistics.median(job["post_s"] for job in jobs) * 1000
                 for store, jobs in by_store.items()}  # fmt: skip
        ratio = medians["s3"] / medians["local"]
        ratios.append(ratio)
        extra_ms = (medians["s3"] - medians["local"]) * 1000
        print(f"{example:14} {medians['local']:8.2f} {medians['s3']:8.2f} {extra_ms:+12.0f} "
              f"{ratio:8.2f}x "
              f"{times['local'][0]:13.2f} {times['s3'][0]:6.2f} "
              f"{posts['local']:14.0f} {posts['s3']:11.0f}"
              f"{'' if ratio <= S3_TARGET else '   OVER TARGET'}")  # fmt: skip
    geomean = math.exp(statistics.fmean(math.log(r) for r in ratios))
    print(f"S3/local job time: geometric mean {geomean:.2f}x, worst {max(ratios):.2f}x "
          f"(target <= {S3_TARGET:.2f}x, i.e. within +{S3_TARGET - 1:.0%} of the local store, "
          f"for every program)")  # fmt: skip


if __name__ == "__main__":
    main()
