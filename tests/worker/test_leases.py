"""LeaseKeeper on the real Redis: a running job's lease outlives its expiry for
as long as its worker keeps it, is given up the moment another worker owns the
job, is released when the job ends, and rides out a Redis error."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from models.errors import LeaseLost
from models.jobs.store import Claim, JobStore
from service.local_processes import free_port
from tests.worker.conftest import wait_until_orphaned
from worker.leases import LeaseKeeper

SPEC = {"fit": {"epochs": 3}, "device": "auto"}
LONG_LEASE_S = 30.0


def running_job(jobs: JobStore, lease_s: float, worker: str = "w1") -> tuple[str, Claim]:
    job_id = str(jobs.create("train", "m", "d", spec=SPEC)["id"])
    claim = jobs.claim(job_id, worker, "cpu", lease_s, max_attempts=3)
    assert claim.outcome == "started"
    return job_id, claim


def take_over(jobs: JobStore, job_id: str, claim: Claim) -> Claim:
    """What another worker does once the lease has lapsed: the lease goes (as
    if it ran out) and the job is claimed again, under a new token."""
    jobs.release(job_id, claim.token)
    other = jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, max_attempts=3)
    assert other.outcome == "resumed"
    return other


def wait_for(event: threading.Event, timeout_s: float = 10.0) -> None:
    assert event.wait(timeout_s), "the lease thread never got there"


def test_the_lease_is_kept_past_its_expiry_while_the_keeper_runs(jobs: JobStore) -> None:
    """Without renewals the lease would lapse after `lease_s` and the sweeper
    would hand a healthy job to another worker."""
    lease_s = 1.0
    job_id, claim = running_job(jobs, lease_s)
    with LeaseKeeper(jobs, job_id, claim, lease_s) as keeper:
        until = time.monotonic() + 2.5 * lease_s
        while time.monotonic() < until:
            assert job_id not in jobs.orphans()
            time.sleep(0.05)
        assert jobs.claim(job_id, "w2", "cpu", lease_s, 3).outcome == "busy"
        assert not keeper.lost.is_set()
        keeper.check()  # still ours: no LeaseLost


def test_another_token_on_the_lease_marks_it_lost(jobs: JobStore) -> None:
    """A worker that stalled past its lease must learn that another one took
    the job over, stop, and not remove the new owner's lease on its way out."""
    lease_s = 0.4  # renewed every 0.1 s
    job_id, claim = running_job(jobs, lease_s)
    with LeaseKeeper(jobs, job_id, claim, lease_s) as keeper:
        keeper.check()
        take_over(jobs, job_id, claim)
        wait_for(keeper.lost)
        with pytest.raises(LeaseLost, match=job_id):
            keeper.check()
    # The keeper's release on exit carries the old token: the new lease stays.
    assert jobs.claim(job_id, "w3", "cpu", lease_s, 3).outcome == "busy"
    record = jobs.get(job_id)
    assert record["worker"] == "w2" and record["attempts"] == 2


def test_the_lease_is_released_on_exit(jobs: JobStore) -> None:
    """A finished job's lease goes at once, not `lease_s` later."""
    job_id, claim = running_job(jobs, LONG_LEASE_S)
    with LeaseKeeper(jobs, job_id, claim, LONG_LEASE_S):
        assert job_id not in jobs.orphans()
    assert job_id in jobs.orphans()  # still `running` in the store, but nobody's
    assert jobs.claim(job_id, "w2", "cpu", LONG_LEASE_S, 3).outcome == "resumed"


def test_the_lease_is_released_when_the_job_raises(jobs: JobStore) -> None:
    """A job that fails still gives its lease back, and the error goes on up."""
    job_id, claim = running_job(jobs, LONG_LEASE_S)
    with pytest.raises(RuntimeError, match="boom"), LeaseKeeper(jobs, job_id, claim, LONG_LEASE_S):
        raise RuntimeError("boom")
    assert job_id in jobs.orphans()


class FlakyRenewals(JobStore):
    """The job store of a worker whose first renewals meet a Redis outage."""

    def __init__(self, client: redis.Redis, prefix: str, failures: int) -> None:
        super().__init__(client, prefix)
        self.failures = failures
        self.calls = 0
        self.renewed = threading.Event()  # a renewal after the outage went through

    def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise redis.ConnectionError("Redis is away")
        renewed = super().renew(job_id, token, lease_s)
        if renewed and self.calls > self.failures + 1:
            self.renewed.set()
        return renewed


def test_a_redis_error_while_renewing_is_retried_not_taken_as_lost(jobs: JobStore) -> None:
    """An outage shorter than the lease must neither kill the lease thread nor
    stop the job: the next renewal after it keeps the lease."""
    lease_s = 2.0  # renewed every 0.5 s: two failures leave half a second to spare
    flaky = FlakyRenewals(jobs.redis, jobs.prefix, failures=2)
    job_id, claim = running_job(flaky, lease_s)
    with LeaseKeeper(flaky, job_id, claim, lease_s) as keeper:
        wait_for(flaky.renewed)  # two failed renewals, then two that went through
        assert not keeper.lost.is_set()
        keeper.check()
        assert job_id not in jobs.orphans()
        assert jobs.claim(job_id, "w2", "cpu", lease_s, 3).outcome == "busy"
    assert job_id in jobs.orphans()  # and released on exit as usual


def test_a_redis_outage_at_exit_leaves_the_lease_to_lapse(jobs: JobStore) -> None:
    """With Redis unreachable (a real refused connection), the keeper neither
    raises nor calls the job lost; its lease runs out by itself."""
    lease_s = 0.4
    job_id, claim = running_job(jobs, lease_s)
    # No retries: redis-py would otherwise back off for seconds before each error.
    unreachable = redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        away = JobStore(unreachable, jobs.prefix)
        with LeaseKeeper(away, job_id, claim, lease_s) as keeper:
            wait_until_orphaned(jobs, job_id)  # every renewal failed meanwhile
            assert not keeper.lost.is_set()
            keeper.check()
    finally:
        unreachable.close()
    assert jobs.claim(job_id, "w2", "cpu", lease_s, 3).outcome == "resumed"
