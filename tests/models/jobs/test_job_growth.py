"""What grows with every job stays in bounds (models.jobs.store): finished
jobs expire, the indexes lose what expired, a listing or a count reads what
it returns, and an epoch's write does not grow with the epochs before it.

Costs are counted on a Redis of this module's own (`INFO commandstats` and
`INFO stats` deltas), which no other test's commands reach."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from models.errors import LeaseLost
from models.jobs.store import JobStore, utc_now
from service.local_processes import Service, free_port
from worker.leases import LeaseKeeper
from worker.progress import JobProgress

SPEC = {"fit": {"epochs": 3}}
LEASE_S = 30.0
RETENTION_S = 30 * 86400  # the default (Settings.jobs.retention_days)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
               "--save", "", "--appendonly", "no"]  # fmt: skip
    server = Service(command, {}, folder / "redis.log")

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    server.wait_until(answers, timeout_s=30)
    yield url
    server.stop()


@pytest.fixture
def client(own_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(own_redis)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def jobs(client: redis.Redis) -> JobStore:
    return JobStore(client, "growth")


def calls(client: redis.Redis) -> dict[str, int]:
    """Commands run since the last CONFIG RESETSTAT, by name."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def new_job(jobs: JobStore, model: str = "m") -> str:
    return str(jobs.create("train", model, "d", spec=SPEC)["id"])


def finish(jobs: JobStore, job_id: str, state: str = "succeeded") -> None:
    assert jobs.claim(job_id, "w", "cpu", LEASE_S, 3).owned
    assert jobs.transition(job_id, state, ("running",), finished_at=utc_now()) == "running"


def test_a_finished_job_expires_after_the_retention(jobs: JobStore, client: redis.Redis) -> None:
    running, succeeded, failed, cancelled = (new_job(jobs) for _ in range(4))
    claim = jobs.claim(running, "w", "cpu", LEASE_S, 3)
    lease = LeaseKeeper(jobs, running, claim, LEASE_S)
    JobProgress(jobs, running, 3, lease).on_epoch_end(1, {"loss": 0.5})
    finish(jobs, succeeded)
    finish(jobs, failed, "failed")
    jobs.request_cancel(cancelled)  # a queued job: cancelled at once

    def ttl(job_id: str) -> float:
        return float(client.pttl(f"growth:job:{job_id}")) / 1000

    assert ttl(running) == -0.001  # no expiry while it runs
    for job_id in (succeeded, failed, cancelled):
        assert RETENTION_S - 60 < ttl(job_id) <= RETENTION_S
    # Its history goes with it.
    finish_running = jobs.transition(running, "succeeded", ("running",), finished_at=utc_now())
    assert finish_running == "running"
    assert RETENTION_S - 60 < client.pttl(f"growth:job:{running}:history") / 1000 <= RETENTION_S
    assert jobs.get(running)["history"] == {"loss": [0.5]}


def test_expired_jobs_leave_the_indexes(client: redis.Redis) -> None:
    """With a retention of milliseconds, finished jobs really expire in Redis;
    `forget_expired` then drops their entries from every index, and keeps
    jobs that run, wait, or were created long ago but finished lately."""
    brief = JobStore(client, "growth", retention_s=0.001)
    kept = JobStore(client, "growth")
    gone = [new_job(brief, "a"), new_job(brief, "b")]
    for job_id in gone:
        finish(brief, job_id)
    waiting, running = new_job(brief, "a"), new_job(brief, "b")
    assert brief.claim(running, "w", "cpu", LEASE_S, 3).owned
    lately = new_job(kept, "a")
    finish(kept, lately)  # a long countdown
    deadline = time.monotonic() + 10
    while brief.missing(gone) != set(gone):  # expired by Redis itself
        assert time.monotonic() < deadline
        time.sleep(0.01)

    assert brief.forget_expired() == 2 * 3  # the job index, one by state, one by model
    assert [job["id"] for job in brief.list()[0]] == [lately, running, waiting]
    assert brief.count_by_state() == {"queued": 1, "running": 1, "succeeded": 1}
    assert [job["id"] for job in brief.list(model="b")[0]] == [running]
    assert client.smembers("growth:jobs:models") == {b"a", b"b"}
    assert brief.forget_expired() == 0


def test_a_model_whose_jobs_all_expired_is_forgotten(client: redis.Redis) -> None:
    brief = JobStore(client, "growth", retention_s=0.001)
    job_id = new_job(brief, "once")
    finish(brief, job_id)
    deadline = time.monotonic() + 10
    while brief.missing([job_id]) != {job_id}:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    brief.forget_expired()
    assert client.smembers("growth:jobs:models") == set()
    assert client.keys("growth:jobs*") == []


def test_a_listing_drops_the_entries_of_jobs_that_are_gone(
    jobs: JobStore, client: redis.Redis
) -> None:
    ids = [new_job(jobs) for _ in range(5)]
    client.delete(f"growth:job:{ids[1]}", f"growth:job:{ids[3]}")  # as an expiry does
    page, next_offset = jobs.list(limit=2)
    assert [job["id"] for job in page] == [ids[4], ids[2]] and next_offset == 2
    # The next page starts where it should, the gone entries before it dropped.
    assert [job["id"] for job in jobs.list(offset=next_offset, limit=2)[0]] == [ids[0]]
    assert client.zcard("growth:jobs") == 3
    assert jobs.count_by_state() == {"queued": 3}


def test_a_finished_job_from_before_expiries_is_given_one(
    jobs: JobStore, client: redis.Redis
) -> None:
    """Written by an earlier release: no expiry. Once it is older than the
    retention, the pass gives it one, counted from when it finished."""
    job_id = new_job(jobs)
    finish(jobs, job_id)
    client.persist(f"growth:job:{job_id}")
    long_ago = time.time() - 2 * RETENTION_S
    client.zadd("growth:jobs", {job_id: long_ago})
    finished = time.time() - RETENTION_S + 600  # ten minutes left
    jobs.update(job_id, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)))
    assert jobs.forget_expired() == 0
    assert 500 < client.ttl(f"growth:job:{job_id}") <= 601


def test_listing_by_model_reads_only_that_models_jobs(jobs: JobStore, client: redis.Redis) -> None:
    for _ in range(150):
        new_job(jobs, "busy")
    rare = [new_job(jobs, "rare") for _ in range(3)]
    for _ in range(150):
        new_job(jobs, "busy")
    client.config_resetstat()
    page, next_offset = jobs.list(model="rare")
    used = calls(client)
    assert [job["id"] for job in page] == rare[::-1] and next_offset is None
    assert used.get("hgetall") == 3 and "hget" not in used  # before: 303 HGETALLs


def test_listing_by_state_and_model_walks_the_smaller_index(
    jobs: JobStore, client: redis.Redis
) -> None:
    busy = [new_job(jobs, "busy") for _ in range(100)]
    rare = [new_job(jobs, "rare") for _ in range(2)]
    for job_id in (busy[10], busy[20], rare[0]):
        assert jobs.claim(job_id, "w", "cpu", LEASE_S, 3).owned
    client.config_resetstat()
    page, _ = jobs.list(state="running", model="busy")
    used = calls(client)
    assert [job["id"] for job in page] == [busy[20], busy[10]]
    # The 3 running jobs' models are read, and the 2 that match read whole.
    assert used.get("hget") == 3 and used.get("hgetall") == 2
    assert [job["id"] for job in jobs.list(state="queued", model="rare")[0]] == [rare[1]]
    assert jobs.list(state="succeeded", model="rare") == ([], None)


def test_filtered_pages_follow_each_other(jobs: JobStore) -> None:
    ids = [new_job(jobs, "a" if index % 3 else "b") for index in range(20)]
    expected = [job_id for index, job_id in enumerate(ids) if index % 3][::-1]
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page, offset = jobs.list(model="a", offset=offset, limit=4)
        seen += [job["id"] for job in page]
    assert seen == expected


def test_the_indexes_follow_every_change_of_state(jobs: JobStore) -> None:
    def listed(state: str) -> list[str]:
        return [job["id"] for job in jobs.list(state=state)[0]]

    first, second, third = (new_job(jobs) for _ in range(3))
    assert listed("queued") == [third, second, first]
    claim = jobs.claim(first, "w", "cpu", LEASE_S, 3)
    assert listed("queued") == [third, second] and listed("running") == [first]
    jobs.transition(first, "queued", ("running",), worker=None)  # handed back
    assert listed("queued") == [third, second, first] and listed("running") == []
    jobs.release(first, claim.token)
    jobs.claim(first, "w", "cpu", LEASE_S, 3)
    jobs.request_cancel(second)  # queued: cancelled at once
    jobs.transition(first, "failed", ("running",), finished_at=utc_now())
    assert listed("cancelled") == [second] and listed("failed") == [first]
    assert jobs.count_by_state() == {"queued": 1, "cancelled": 1, "failed": 1}
    jobs.delete(third)
    assert jobs.count_by_state() == {"cancelled": 1, "failed": 1}
    assert listed("queued") == [] and [job["id"] for job in jobs.list(model="m")[0]] == [
        second,
        first,
    ]


def test_counting_by_state_reads_no_job(jobs: JobStore, client: redis.Redis) -> None:
    ids = [new_job(jobs) for _ in range(40)]
    for job_id in ids[:10]:
        finish(jobs, job_id)
    jobs.claim(ids[10], "w", "cpu", LEASE_S, 3)
    client.config_resetstat()
    assert jobs.count_by_state() == {"queued": 29, "running": 1, "succeeded": 10}
    used = calls(client)
    assert used.get("zcard") == 5 and "hget" not in used  # before: 40 HGETs


def test_training_totals_need_no_scan(jobs: JobStore, client: redis.Redis) -> None:
    jobs.record_training("cpu", 100, 2.0)
    jobs.record_training("gpu:0", 300, 1.0)
    jobs.record_training("cpu", 50, 1.0)
    client.config_resetstat()
    totals = jobs.training_totals()
    assert totals == {
        "cpu": {"samples": 150.0, "seconds": 3.0, "last_samples_per_s": 50.0},
        "gpu:0": {"samples": 300.0, "seconds": 1.0, "last_samples_per_s": 300.0},
    }
    assert "scan" not in calls(client) and "keys" not in calls(client)


def test_jobs_of_an_earlier_release_are_indexed_once(jobs: JobStore, client: redis.Redis) -> None:
    """Before the indexes, a job was its hash and an entry in the job index
    (and a device's totals a `training:<device>` hash)."""
    done, waiting = new_job(jobs, "old"), new_job(jobs, "old")
    finish(jobs, done)
    for key in client.keys("growth:jobs:*"):
        client.delete(key)
    client.delete("growth:training-devices")
    client.hset("growth:training:cpu", mapping={"samples": 10, "seconds": 1})
    assert jobs.list(model="old") == ([], None)

    assert jobs.index_earlier_jobs() == 2
    assert [job["id"] for job in jobs.list(model="old")[0]] == [waiting, done]
    assert jobs.count_by_state() == {"queued": 1, "succeeded": 1}
    assert set(jobs.training_totals()) == {"cpu"}
    assert jobs.index_earlier_jobs() == 0  # once


def progress_of(jobs: JobStore, job_id: str, epochs: int, history: dict | None) -> JobProgress:
    claim = jobs.claim(job_id, "w", "cpu", LEASE_S, 3)
    assert claim.owned
    return JobProgress(jobs, job_id, epochs, LeaseKeeper(jobs, job_id, claim, LEASE_S), history)


def test_an_epochs_write_does_not_grow_with_the_epochs_before_it(
    jobs: JobStore, client: redis.Redis
) -> None:
    """A job resumed at epoch 5,000 (its checkpoint's curves): each epoch
    after that sends one epoch's logs, and the record still shows them all."""
    job_id = new_job(jobs)
    earlier = {"loss": [1 / epoch for epoch in range(1, 5000)],
               "accuracy": [epoch / 5000 for epoch in range(1, 5000)]}  # fmt: skip
    progress = progress_of(jobs, job_id, 10_000, earlier)
    progress.on_epoch_end(5000, {"loss": 0.0002, "accuracy": 0.5})  # sends the 4,999 first
    written = []
    for epoch in (5001, 5002, 5003):
        before = client.info("stats")["total_net_input_bytes"]
        progress.on_epoch_end(epoch, {"loss": 1 / epoch, "accuracy": epoch / 10_000})
        written.append(client.info("stats")["total_net_input_bytes"] - before)
    # The INFO command itself is in each figure. Before: ~190 KB each, growing.
    assert max(written) < 1024, written
    history = jobs.get(job_id)["history"]
    assert len(history["loss"]) == 5003 and history["loss"][:4999] == earlier["loss"]
    assert history["accuracy"][-1] == 5003 / 10_000
    assert client.llen(f"growth:job:{job_id}:history") == 5003
    assert jobs.get(job_id)["progress"]["epoch"] == 5003


def test_a_resumed_job_replaces_the_epochs_after_its_checkpoint(jobs: JobStore) -> None:
    """The worker that died wrote 5 epochs; its checkpoint holds 3; the resumed
    run's epoch 4 replaces the old 4 and 5, not follows them."""
    job_id = new_job(jobs)
    first = progress_of(jobs, job_id, 10, None)
    for epoch in range(1, 6):
        first.on_epoch_end(epoch, {"loss": float(epoch)})
    jobs.release(job_id, first.lease.token)  # as its lease lapses
    checkpoint = {"loss": [1.0, 2.0, 3.0]}
    resumed = progress_of(jobs, job_id, 10, checkpoint)
    resumed.on_epoch_end(4, {"loss": 40.0})
    assert jobs.get(job_id)["history"] == {"loss": [1.0, 2.0, 3.0, 40.0]}
    resumed.on_epoch_end(5, {"loss": 50.0})
    assert jobs.get(job_id)["history"] == {"loss": [1.0, 2.0, 3.0, 40.0, 50.0]}


def test_epochs_a_worker_could_not_write_are_written_with_the_next(jobs: JobStore) -> None:
    """Its history holds 2 epochs (the next writes were lost: Redis was away),
    its checkpoint 4: the first write of the resumed run fills the gap."""
    job_id = new_job(jobs)
    first = progress_of(jobs, job_id, 10, None)
    for epoch in (1, 2):
        first.on_epoch_end(epoch, {"loss": float(epoch)})
    jobs.release(job_id, first.lease.token)
    resumed = progress_of(jobs, job_id, 10, {"loss": [1.0, 2.0, 3.0, 4.0]})
    resumed.on_epoch_end(5, {"loss": 5.0})
    assert jobs.get(job_id)["history"] == {"loss": [1.0, 2.0, 3.0, 4.0, 5.0]}
    assert jobs.epoch_logs(job_id, 3) == [{"loss": 4.0}, {"loss": 5.0}]


def test_only_the_owner_of_a_running_job_appends_to_its_history(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    progress = progress_of(jobs, job_id, 10, None)
    progress.on_epoch_end(1, {"loss": 1.0})
    with pytest.raises(LeaseLost):
        jobs.append_epochs(job_id, "not-the-token", 1, [{"loss": 2.0}], {"epoch": 2})
    jobs.transition(job_id, "cancelled", ("running",), finished_at=utc_now())
    with pytest.raises(LeaseLost):
        progress.on_epoch_end(2, {"loss": 2.0})
    record = jobs.get(job_id)
    assert record["history"] == {"loss": [1.0]} and record["progress"]["epoch"] == 1


def test_a_record_written_before_the_history_list_keeps_its_history(
    jobs: JobStore, client: redis.Redis
) -> None:
    job_id = new_job(jobs)
    client.hset(f"growth:job:{job_id}", "history", '{"loss": [0.5, 0.25]}')
    assert jobs.get(job_id)["history"] == {"loss": [0.5, 0.25]}
    assert jobs.list()[0][0]["history"] == {"loss": [0.5, 0.25]}


def test_a_new_job_shows_an_empty_history(jobs: JobStore, tmp_path: Path) -> None:
    created = jobs.create("train", "m", "d", spec=SPEC)
    assert created["history"] == {} and jobs.get(created["id"])["history"] == {}
