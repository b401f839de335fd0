"""Many models, each answered as if it were the only one (issue 25's "Must show").

    .venv/bin/python -m bench.many_models [--quick]
    (`make bench-serve` runs it too, after bench.serve's tables)

Against real `fitserve-api` processes (their default worker count and model
memory settings), each on a store of its own made for the run:

1. publishes 1,000 small (iris-sized) models and 20 MNIST-sized ones
   (bench.fleet: one of each trained, the rest its file published again);
2. starts the API on them: seconds until `/readyz` is 200, then how many
   models `/v2/models/<m>/ready` calls ready;
3. one-row JSON `:predict` on one model (p50, p99; keep-alive, one client),
   then on every model in a shuffled order, twice: the second pass's p50 and
   p99 against the one model's;
4. RSS of each API worker process, idle on an empty store and after (3);
5. and 6. how soon a new model is served: under a full model budget, and
   from another host (bench.publish_reach);
7. serving while Redis hangs (bench.redis_hang).

Each figure is printed with its target and PASS or FAIL.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", os.environ.get("FITSERVE_KERAS_BACKEND", "jax"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import publish_reach, redis_hang  # noqa: E402
from bench.api_process import Api, start_api  # noqa: E402
from bench.fleet import TrainedModel, train_small_and_wide  # noqa: E402
from bench.load import LoadResult, post_once, run_load  # noqa: E402
from bench.report import check, machine  # noqa: E402
from bench.seed_model import ONE_ROW_HEADERS  # noqa: E402
from bench.stores import KEY, bench_settings  # noqa: E402
from models.storage.blobs import open_blobs  # noqa: E402
from models.storage.model_store import ModelStore  # noqa: E402
from service.local_processes import forget_redis_state  # noqa: E402


@dataclass(frozen=True)
class Scale:
    small: int  # iris-sized models
    wide: int  # MNIST-sized (784-512-10) models
    single_requests: int  # on one model: half before the passes over all, half after
    hang_s: float  # how long Redis stays stopped (bench.redis_hang)
    budget_room: int  # MNIST-sized models the full budget of bench.publish_reach holds


FULL = Scale(small=1000, wide=20, single_requests=3000, hang_s=25.0, budget_room=5)
QUICK = Scale(small=100, wide=4, single_requests=1000, hang_s=5.0, budget_room=2)


# The two models trained for real (bench.fleet); the others are their copies.
TRAINED = ("small-0000", "wide-00")


def predict_path(name: str) -> str:
    return f"/v1/models/{name}:predict"


def publish_fleet(store: ModelStore, small: TrainedModel, wide: TrainedModel,
                  scale: Scale) -> dict[str, bytes]:  # fmt: skip
    """Every model's name (the two trained ones included) and its one-row body."""
    fleet = {f"small-{index:04}": small for index in range(scale.small)}
    fleet |= {f"wide-{index:02}": wide for index in range(scale.wide)}
    started = time.perf_counter()
    for name, model in fleet.items():
        if name not in TRAINED:
            model.publish_as(store, name)
    seconds = time.perf_counter() - started
    print(f"  published {len(fleet) - len(TRAINED):,} more in {seconds:.1f} s: the two trained "
          "files again under other names, by ModelStore.publish (no training each)")  # fmt: skip
    return {name: model.one_row for name, model in fleet.items()}


def idle_rss(folder: Path) -> dict[int, float]:
    """Each worker's RSS on an empty store, once started and quiet."""
    settings = bench_settings(folder / "var-empty")
    api = start_api(settings, folder, "api-empty")
    try:
        api.ready_after_s()
        api.wait_until_quiet()
        return api.rss_mib()
    finally:
        api.stop()
        forget_redis_state(settings)


def ask_ready(api: Api, names: list[str]) -> tuple[int, float]:
    """(how many answer ready, the slowest answer's seconds), one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=120)
    headers = {"Authorization": f"Bearer {KEY}"}
    ready, slowest = 0, 0.0
    try:
        for name in names:
            started = time.perf_counter()
            connection.request("GET", f"/v2/models/{name}/ready", headers=headers)
            response = connection.getresponse()
            response.read()
            slowest = max(slowest, time.perf_counter() - started)
            ready += response.status == 200
    finally:
        connection.close()
    return ready, slowest


def from_a_start(api: Api, names: list[str]) -> None:
    seconds = api.ready_after_s()
    check("/readyz 200 after the start", f"{seconds:.1f} s", "<= 30 s", seconds <= 30)
    ready, slowest = ask_ready(api, names)
    check("then ready (/v2/models/<m>/ready)", f"{ready:,} of {len(names):,} models, slowest "
          f"answer {slowest * 1000:.0f} ms", "every one", ready == len(names))  # fmt: skip
    quiet = api.wait_until_quiet()
    print(f"  (the API processes went quiet {quiet:.1f} s after: loads the questions started)")


def one_pass(port: int, order: list[str], bodies: dict[str, bytes]) -> LoadResult:
    """One-row `:predict` on each model of `order`, on a keep-alive
    connection (a new one after a request that failed or timed out)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies, errors, first_error = [], 0, ""
    started = time.perf_counter()
    for name in order:
        began = time.perf_counter()
        try:
            status, answer = post_once(connection, predict_path(name), bodies[name],
                                       ONE_ROW_HEADERS)  # fmt: skip
        except (OSError, http.client.HTTPException) as exc:
            connection.close()  # the next request connects again
            status, answer = 0, repr(exc).encode()
        if status == 200:
            latencies.append((time.perf_counter() - began) * 1000)
        else:
            errors += 1
            first_error = first_error or f"{name}: {status} {answer[:200]!r}"
    connection.close()
    if errors:
        print(f"  {errors} of {len(order)} not 200, the first: {first_error}")
    return LoadResult(latencies, time.perf_counter() - started, errors)


def one_and_all(api: Api, bodies: dict[str, bytes], scale: Scale) -> None:
    """Step 3: one model's p50 and p99 (its requests half before and half
    after the passes, so the machine's drift hits both), then every model."""
    single = next(iter(bodies))
    path, body = predict_path(single), bodies[single]
    run_load(api.port, path, body, ONE_ROW_HEADERS, 1, 60.0, 200)  # warm-up
    half = scale.single_requests // 2
    before = run_load(api.port, path, body, ONE_ROW_HEADERS, 1, 120.0, half)
    passes = []
    for seed in (0, 1):
        order = list(bodies)
        random.Random(seed).shuffle(order)
        passes.append(one_pass(api.port, order, bodies))
    after = run_load(api.port, path, body, ONE_ROW_HEADERS, 1, 120.0, half)
    one = LoadResult(before.latencies_ms + after.latencies_ms, before.seconds + after.seconds,
                     before.errors + after.errors)  # fmt: skip
    print(f"  one model ({single}), {len(one.latencies_ms):,} requests: p50 {one.p50:.2f} ms, "
          f"p99 {one.p99:.2f} ms")  # fmt: skip
    for number, result in enumerate(passes, 1):
        slowest = max(result.latencies_ms, default=float("nan"))
        print(f"  all {len(bodies):,} models, pass {number}: p50 {result.p50:.2f} ms, "
              f"p99 {result.p99:.2f} ms, max {slowest:.1f} ms")  # fmt: skip
    second = passes[1]
    check("second pass p50 / one model's", f"{second.p50 / one.p50:.2f}x", "<= 1.5x",
          second.p50 <= 1.5 * one.p50 and not second.errors)  # fmt: skip
    check("second pass p99 / one model's", f"{second.p99 / one.p99:.2f}x", "<= 3x",
          second.p99 <= 3 * one.p99 and not second.errors)  # fmt: skip


def show_rss(what: str, sizes: dict[int, float]) -> bool:
    figure = ", ".join(f"{mib:.0f}" for mib in sizes.values()) + " MiB"
    return check(f"RSS per API worker process, {what}", figure, "<= 400 MiB each",
                 bool(sizes) and max(sizes.values()) <= 400)  # fmt: skip


def measure(scale: Scale) -> None:
    began = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="fitserve-many-"))
    settings = bench_settings(folder / "var")
    print(f"\nmany models: {scale.small:,} small + {scale.wide} MNIST-sized, "
          f"fitserve-api with {settings.server.workers} worker processes. "
          f"machine: {machine()}", flush=True)  # fmt: skip
    try:
        empty = idle_rss(folder)
        small, wide = train_small_and_wide(settings, *TRAINED)
        bodies = publish_fleet(ModelStore(open_blobs(settings)), small, wide, scale)
        api = start_api(settings, folder, "api-many")
        try:
            from_a_start(api, list(bodies))
            one_and_all(api, bodies, scale)
            api.wait_until_quiet()
            show_rss("idle, empty store", empty)
            show_rss(f"after predicting with all {len(bodies):,} models", api.rss_mib())
        finally:
            api.stop()
        publish_reach.full_budget(folder, wide, scale.wide, scale.budget_room)
        publish_reach.across_hosts(folder, small)
        redis_hang.measure(folder, small, scale.hang_s)
        print(f"\nmany models: {time.perf_counter() - began:.0f} s in all")
    finally:
        forget_redis_state(settings)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer models ({QUICK.small} + {QUICK.wide}), Redis stopped "
                        f"{QUICK.hang_s:.0f} s: a smoke test")  # fmt: skip
    options = parser.parse_args()
    measure(QUICK if options.quick else FULL)


if __name__ == "__main__":
    main()
