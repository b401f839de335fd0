"""Serving benchmark: the service against the hand-written baseline, in one run.

    make bench-serve        (or: .venv/bin/python -m bench.serve [--quick])

Trains the seed's binary model (breast cancer, 30 features, 3 x Dense(60) +
sigmoid), publishes it, then starts on this machine:
  - the service (`fitserve-api`, gunicorn, its default workers and threads),
  - the baseline under TensorFlow (a user's default) and under the service's
    backend: bench/baseline_app.py, Flask threaded, `model.predict` per request,
and measures one row at concurrency 1 and 8 (p50/p99 latency, throughput),
then 100,000 rows in one request (JSON and NPY) against in-process
`model.predict` on the same array. Prints ratios; with `wrk` installed
(Debian package), checks the one-row figures with it too.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", os.environ.get("FITSERVE_KERAS_BACKEND", "jax"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import redis  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402

from bench.load import LoadResult, post_once, run_load  # noqa: E402
from models.datasets import DatasetStore  # noqa: E402
from models.jobs.store import JobStore  # noqa: E402
from models.settings import Queues, Settings  # noqa: E402
from service.local_processes import Service, api_answers, free_port, settings_environment  # noqa: E402
from worker.runner import WorkerContext, run_training_job  # noqa: E402

KEY = "bench-key"
SPEC = json.loads((ROOT / "examples" / "breast_cancer.json").read_text())["spec"]
BATCH_ROWS = 100_000


def train_and_publish(settings: Settings) -> Path:
    client = redis.Redis.from_url(settings.redis_url)
    jobs = JobStore(client, settings.redis_prefix)
    datasets = DatasetStore(settings.datasets_dir)
    cancer = load_breast_cancer()
    x = (cancer.data - cancer.data.mean(axis=0)) / cancer.data.std(axis=0)
    record, _ = datasets.save(
        json.dumps({"x": x.tolist(), "y": cancer.target.tolist()}).encode(), "application/json"
    )
    job = jobs.create("train", "cancer", record["id"], spec=SPEC)
    context = WorkerContext.from_settings(settings, client, "bench", "cpu", settings.keras_backend)
    finished = run_training_job(job["id"], context)
    for key in client.scan_iter(f"{settings.redis_prefix}:*"):
        client.delete(key)
    assert finished["state"] == "succeeded", finished["error"]
    return settings.models_dir / "cancer" / "1" / "model.keras"


def start_baseline(model: Path, backend: str, folder: Path) -> tuple[Service, int]:
    port = free_port()
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    service = Service.python([str(ROOT / "bench" / "baseline_app.py"), str(model), str(port)],
                             environment, folder / f"baseline-{backend}.log")  # fmt: skip
    service.wait_until(lambda: _pings(port), timeout_s=120)
    return service, port


def _pings(port: int) -> bool:
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False


def one_row(port: int, path: str, clients: int, seconds: float, warm_up_clients: int) -> LoadResult:
    body = json.dumps({"instances": [list(map(float, np.linspace(-1, 1, 30)))]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    run_load(port, path, body, headers, warm_up_clients, 60.0, 40)
    return run_load(port, path, body, headers, clients, seconds, 1_000_000)


def batch_rows_per_s(port: int, x: np.ndarray, kind: str, repeats: int) -> float:
    import http.client

    if kind == "json":
        body = json.dumps({"instances": x.tolist()}).encode()
        headers = {"Content-Type": "application/json"}
    else:
        buffer = io.BytesIO()
        np.save(buffer, x)
        body = buffer.getvalue()
        headers = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
    headers["Authorization"] = f"Bearer {KEY}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    timings = []
    for _ in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        status, answer = post_once(connection, "/v1/models/cancer:predict", body, headers)
        timings.append(time.perf_counter() - started)
        assert status == 200, answer[:300]
    connection.close()
    return len(x) / statistics.median(timings[1:])


def in_process_rows_per_s(model_path: Path, x: np.ndarray, repeats: int) -> float:
    import keras

    model = keras.saving.load_model(model_path)
    model.predict(x[:1000], verbose=0)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(x, verbose=0)
        timings.append(time.perf_counter() - started)
    return len(x) / statistics.median(timings)


def wrk_one_row(port: int, path: str, connections: int, folder: Path) -> str | None:
    if shutil.which("wrk") is None:
        return None
    script = folder / "post.lua"
    body = json.dumps({"instances": [list(map(float, np.linspace(-1, 1, 30)))]})
    script.write_text(
        'wrk.method = "POST"\nwrk.body = \'' + body + "'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
    )
    result = subprocess.run(
        ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", "-d8s", "--latency", "-s",
         str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    p50 = next((line.split()[1] for line in lines if line.strip().startswith("50%")), "?")
    p99 = next((line.split()[1] for line in lines if line.strip().startswith("99%")), "?")
    rate = next((line.split()[1] for line in lines if line.startswith("Requests/sec")), "?")
    failed = next((line.split(":")[1].strip() for line in lines if "Non-2xx" in line), None)
    return f"p50 {p50}, p99 {p99}, {rate} req/s" + (f" ({failed} FAILED)" if failed else "")


def forward_pass_costs(model_path: Path) -> None:
    """What server-side micro-batching of concurrent one-row requests could save."""
    import keras

    from models.serving.forward import ForwardPass

    forward = ForwardPass.from_keras(keras.saving.load_model(model_path))
    one, eight = np.ones((1, 30), "float32"), np.ones((8, 30), "float32")
    costs = {}
    for name, x in (("1 row", one), ("8 rows", eight)):
        started = time.perf_counter()
        for _ in range(2000):
            forward(x)
        costs[name] = (time.perf_counter() - started) / 2000 * 1e6
    saved = costs["1 row"] - costs["8 rows"] / 8
    print(f"\nmicro-batching: the forward pass takes {costs['1 row']:.0f} us for 1 row and "
          f"{costs['8 rows']:.0f} us for 8; batching 8 concurrent rows would save at most "
          f"{saved:.0f} us of a request's time (its c1 p50 above is ~1 ms)")  # fmt: skip


def machine() -> str:
    import keras

    return (f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
            f"{platform.python_version()}, Keras {keras.__version__} "
            f"({keras.backend.backend()} in the service)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    options = parser.parse_args()
    seconds, repeats = (3.0, 1) if options.quick else (10.0, 3)
    folder = Path(tempfile.mkdtemp(prefix="fitserve-bench-"))
    tag = uuid.uuid4().hex[:8]
    settings = Settings(data_dir=folder / "var", redis_prefix=f"bench-{tag}",
                        queues=Queues(cpu=f"bench-{tag}.cpu", gpu=f"bench-{tag}.gpu"),
                        api_keys=[KEY])  # fmt: skip
    print(f"machine: {machine()}")
    model_path = train_and_publish(settings)
    port = free_port()
    service = Service.entry_point(["fitserve-api"], settings_environment(settings, port) | {
        "FITSERVE_SERVER__WORKERS": str(settings.server.workers)}, folder / "api.log")  # fmt: skip
    servers: dict[str, tuple[int, str]] = {}
    started: list[Service] = [service]
    try:
        service.wait_until(api_answers(f"http://127.0.0.1:{port}"))
        servers["fitserve"] = (port, "/v1/models/cancer:predict")
        for backend in ("tensorflow", settings.keras_backend):
            baseline, baseline_port = start_baseline(model_path, backend, folder)
            started.append(baseline)
            servers[f"baseline ({backend})"] = (baseline_port, "/predict")
        report(servers, settings, model_path, seconds, repeats, folder)
    finally:
        for process in started:
            process.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report(servers: dict[str, tuple[int, str]], settings: Settings, model_path: Path,
           seconds: float, repeats: int, folder: Path) -> None:  # fmt: skip
    results: dict[str, dict[int, LoadResult]] = {}
    print(f"\none row ({seconds:.0f} s per cell, Python keep-alive clients on the same machine)")
    print(f"{'server':28} {'c1 p50 ms':>10} {'c1 p99 ms':>10} {'c1 req/s':>9} "
          f"{'c8 p50 ms':>10} {'c8 p99 ms':>10} {'c8 req/s':>9}")  # fmt: skip
    for name, (port, path) in servers.items():
        # c1 first, warmed by one client: a baseline that breaks under
        # concurrent requests still gets its single-client figures.
        warm_up = 8 if name == "fitserve" else 1  # fitserve: reach every gunicorn worker
        results[name] = {clients: one_row(port, path, clients, seconds, warm_up)
                         for clients in (1, 8)}  # fmt: skip
        c1, c8 = results[name][1], results[name][8]
        print(
            f"{name:28} {c1.p50:10.2f} {c1.p99:10.2f} {c1.throughput:9.0f} "
            f"{c8.p50:10.2f} {c8.p99:10.2f} {c8.throughput:9.0f}"
            + (f"   errors {c1.errors + c8.errors}" if c1.errors + c8.errors else "")
        )
    ours, tf = results["fitserve"], results["baseline (tensorflow)"]
    working = [r for n, r in results.items() if n != "fitserve" and r[1].latencies_ms]
    peer = min(working, key=lambda r: r[1].p50)
    print(f"\nratios: c1 p50 {tf[1].p50 / ours[1].p50:.1f}x lower than the TensorFlow baseline "
          f"(target >= 20x, and {ours[1].p50:.2f} ms against 3 ms), "
          f"{peer[1].p50 / ours[1].p50:.1f}x lower than the stronger baseline; "
          f"c8 throughput {ours[8].throughput / tf[8].throughput:.1f}x the TensorFlow "
          f"baseline's (target >= 10x)")  # fmt: skip

    port = servers["fitserve"][0]
    x = np.random.default_rng(0).normal(size=(BATCH_ROWS, 30)).astype("float32")
    in_process = in_process_rows_per_s(model_path, x, repeats)
    as_npy = batch_rows_per_s(port, x, "npy", repeats)
    as_json = batch_rows_per_s(port, x, "json", repeats)
    print(f"\n{BATCH_ROWS:,} rows in one request (median of {repeats})")
    print(f"  in-process model.predict ({settings.keras_backend}): {in_process:12,.0f} rows/s")
    print(
        f"  fitserve, NPY in and out:   {as_npy:12,.0f} rows/s = "
        f"{as_npy / in_process:.0%} of in-process (target >= 50%)"
    )
    print(
        f"  fitserve, JSON in and out:  {as_json:12,.0f} rows/s = "
        f"{as_json / in_process:.0%} of in-process (target >= 20%)"
    )

    forward_pass_costs(model_path)

    checks = {name: [wrk_one_row(port, path, clients, folder) for clients in (1, 8)]
              for name, (port, path) in servers.items()}  # fmt: skip
    if all(value is None for values in checks.values() for value in values):
        print("\n(wrk not installed: apt-get install wrk to check the one-row figures with it)")
        return
    print("\none row, checked with wrk (8 s, c1 / c8)")
    for name, (one_client, eight_clients) in checks.items():
        print(f"  {name:28} c1: {one_client}   c8: {eight_clients}")


if __name__ == "__main__":
    main()
