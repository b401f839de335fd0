"""Job claims and leases on the real Redis: who may run a job, and when."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from models.errors import LeaseLost
from models.jobs.store import Claim, JobStore
from models.settings import Settings

SPEC = {"fit": {"epochs": 3}}
LEASE_S = 0.3


@pytest.fixture
def jobs(settings: Settings) -> Iterator[JobStore]:
    client = redis.Redis.from_url(settings.redis_url)
    yield JobStore(client, settings.redis_prefix)
    client.close()


def new_job(jobs: JobStore) -> str:
    return str(jobs.create("train", "m", "d", spec=SPEC)["id"])


def claim(jobs: JobStore, job_id: str, worker: str = "w1", max_attempts: int = 3) -> Claim:
    return jobs.claim(job_id, worker, "cpu", LEASE_S, max_attempts)


def lapse(jobs: JobStore, job_id: str) -> None:
    """What a worker's death looks like to Redis: its lease runs out."""
    deadline = time.monotonic() + 5
    while job_id not in jobs.orphans():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_queued_job_is_claimed_once(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    first = claim(jobs, job_id)
    assert first.outcome == "started" and first.owned and first.attempts == 1
    record = jobs.get(job_id)
    assert record["state"] == "running" and record["worker"] == "w1"
    assert record["started_at"] is not None
    duplicate = claim(jobs, job_id, "w2")
    assert duplicate.outcome == "busy" and not duplicate.owned
    assert jobs.get(job_id)["worker"] == "w1" and jobs.get(job_id)["attempts"] == 1
    assert jobs.orphans() == []


def test_a_renewed_lease_holds_and_a_lapsed_one_is_taken_over(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    first = claim(jobs, job_id)
    for _ in range(4):  # renewing keeps it past its first expiry
        time.sleep(LEASE_S / 3)
        assert jobs.renew(job_id, first.token, LEASE_S)
    assert claim(jobs, job_id, "w2").outcome == "busy"
    lapse(jobs, job_id)
    second = claim(jobs, job_id, "w2")
    assert second.outcome == "resumed" and second.attempts == 2
    assert second.previous_worker == "w1"
    assert not jobs.renew(job_id, first.token, LEASE_S)  # the dead owner lost it
    jobs.release(job_id, first.token)  # and cannot release the new owner's lease
    assert claim(jobs, job_id, "w3").outcome == "busy"


def test_deliveries_are_bounded(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    assert claim(jobs, job_id, max_attempts=2).outcome == "started"
    lapse(jobs, job_id)
    assert claim(jobs, job_id, "w2", max_attempts=2).outcome == "resumed"
    lapse(jobs, job_id)
    gave_up = claim(jobs, job_id, "w3", max_attempts=2)
    assert gave_up.outcome == "gave_up" and not gave_up.owned
    record = jobs.get(job_id)
    assert record["state"] == "failed" and record["error"]["code"] == "worker_lost"
    assert "after 2 deliveries" in record["error"]["message"]
    assert "w2" in record["error"]["message"]
    assert jobs.orphans() == []
    assert claim(jobs, job_id, "w4").outcome == "finished"


def test_cancel_of_a_job_whose_worker_died(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    claim(jobs, job_id)
    # While the lease holds, a cancel is a request the worker acts on.
    assert jobs.request_cancel(job_id)["state"] == "running"
    assert jobs.cancel_requested(job_id)
    lapse(jobs, job_id)
    cancelled = claim(jobs, job_id, "w2")
    assert cancelled.outcome == "cancelled"
    assert jobs.get(job_id)["state"] == "cancelled" and jobs.orphans() == []

    # Asked after the lease lapsed, the cancel is immediate.
    other = new_job(jobs)
    claim(jobs, other)
    lapse(jobs, other)
    assert jobs.request_cancel(other)["state"] == "cancelled"
    assert claim(jobs, other, "w2").outcome == "finished"


def test_missing_and_finished_jobs_are_left_alone(jobs: JobStore) -> None:
    assert claim(jobs, "0" * 32).outcome == "missing"
    job_id = new_job(jobs)
    jobs.request_cancel(job_id)
    assert claim(jobs, job_id).outcome == "finished"
    assert jobs.get(job_id)["attempts"] == 0


def test_auto_jobs_sent_to_the_gpu_queue_are_stranded_until_they_start(jobs: JobStore) -> None:
    on_gpu, also_on_gpu, on_cpu = (new_job(jobs) for _ in range(3))
    jobs.routed(on_gpu, "q.gpu", by_choice=True)
    jobs.routed(also_on_gpu, "q.gpu", by_choice=True)
    jobs.routed(on_cpu, "q.cpu", by_choice=False)
    assert sorted(jobs.stranded()) == sorted([on_gpu, also_on_gpu])
    assert jobs.get(on_gpu)["queue"] == "q.gpu" and jobs.get(on_cpu)["queue"] == "q.cpu"

    assert claim(jobs, on_gpu).outcome == "started"  # a GPU worker took it
    assert jobs.stranded() == [also_on_gpu]
    jobs.routed(also_on_gpu, "q.cpu", by_choice=False)  # moved by a sweeper
    assert jobs.stranded() == []
    assert jobs.get(also_on_gpu)["queue"] == "q.cpu"


def test_a_deleted_job_is_not_stranded(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    jobs.routed(job_id, "q.gpu", by_choice=True)
    jobs.delete(job_id)
    assert jobs.stranded() == []


def test_a_worker_whose_job_was_taken_over_writes_nothing_to_it(jobs: JobStore) -> None:
    """A worker stalled past its lease (stopped, swapped out) and another took
    its job over: when it wakes, every write it makes carries its token and is
    refused, and the new owner's go through."""
    job_id = new_job(jobs)
    stalled = claim(jobs, job_id, "w1")
    lapse(jobs, job_id)
    owner = claim(jobs, job_id, "w2")
    assert owner.outcome == "resumed"
    before = jobs.get(job_id)
    assert "owner_token" not in before and "handed_back" not in before  # internal

    with pytest.raises(LeaseLost):
        jobs.update(job_id, token=stalled.token, progress={"epoch": 9})
    with pytest.raises(LeaseLost):
        jobs.transition(job_id, "succeeded", ("running",), token=stalled.token, result={"v": 2})
    with pytest.raises(LeaseLost):
        jobs.transition(job_id, "queued", ("running",), token=stalled.token, worker=None)
    with pytest.raises(LeaseLost):
        jobs.check_owner(job_id, stalled.token)
    assert jobs.get(job_id) == before

    jobs.check_owner(job_id, owner.token)
    jobs.update(job_id, token=owner.token, resumed_from_epoch=3)
    assert jobs.transition(job_id, "succeeded", ("running",), token=owner.token) == "running"
    with pytest.raises(LeaseLost):  # finished: not even its owner writes to it any more
        jobs.update(job_id, token=owner.token, resumed_from_epoch=4)
    assert jobs.get(job_id)["resumed_from_epoch"] == 3


def test_hand_backs_do_not_use_up_a_jobs_deliveries(jobs: JobStore) -> None:
    """A job handed back on SIGTERM (workers restarted one after another) as
    often as it may be delivered still runs, and still survives its worker's death."""
    job_id = new_job(jobs)
    for attempt in range(1, 4):
        taken = claim(jobs, job_id, f"w{attempt}", max_attempts=2)
        assert taken.outcome == "started"
        assert jobs.transition(job_id, "queued", ("running",), token=taken.token) == "running"
    claim(jobs, job_id, "dies", max_attempts=2)
    lapse(jobs, job_id)
    resumed = claim(jobs, job_id, "w5", max_attempts=2)
    assert resumed.outcome == "resumed" and resumed.attempts == 5
    lapse(jobs, job_id)
    gave_up = claim(jobs, job_id, "w6", max_attempts=2)  # two deaths: that is the bound
    assert gave_up.outcome == "gave_up"
    assert "after 2 deliveries" in jobs.get(job_id)["error"]["message"]
