"""Every Redis client of fitserve, made from Settings here: the API's and the
worker's, and through them the model catalog's subscriber, the worker
registry, the heartbeat and the leases (Celery's broker connections take the
same timeouts: worker.celery_app).

A client waits at most `Settings.redis` for a connection and for each answer,
and never retries a failed call: retries multiply the wait on a Redis that
hangs, and a command that timed out may still run when Redis answers again,
so sending it again could apply it twice. A pooled connection that Redis
closed (a restart) is replaced by the pool before it is used, so no retry is
needed to come back after one.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from models.settings import Settings


def open_redis(settings: Settings) -> redis.Redis:
    """A client of `settings.redis_url` with `settings.redis`' timeouts."""
    timeouts = settings.redis
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=timeouts.socket_timeout_s,
        socket_connect_timeout=timeouts.connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


WHAT = "Redis (the job store and queue)"
# Redis answers, but refuses writes for a state of its own that someone must
# fix: a 503 that says which, never a 500. By the code its error reply starts with.
REFUSALS = {
    "OOM": "it is out of memory (maxmemory reached, nothing it may evict)",
    "READONLY": "it is a read-only replica",
    "MISCONF": "it cannot save its snapshots to disk (stop-writes-on-bgsave-error)",
    "NOREPLICAS": "fewer replicas than min-replicas-to-write answer it",
    "MASTERDOWN": "it is a replica that lost its primary",
}
# Redis answers, but nothing else for a while.
BUSY = {"BUSY": "it is running a long script", "LOADING": "it is loading its data set"}


def redis_trouble(error: BaseException, socket_timeout_s: float) -> str | None:
    """What `error` (redis-py's, or another library's wrapping of one) says
    about Redis: a phrase for a 503 and for /readyz. None when it says nothing
    about Redis but about our command (a wrong type, a script's bug): a 500."""
    cause = redis_error_in(error)
    if cause is None:  # a socket error of a library that wraps redis-py (kombu)
        return f"{WHAT} unreachable"
    code = reply_code(cause)
    if code in REFUSALS:
        return f"{WHAT} refuses writes: {REFUSALS[code]}"
    if code in BUSY:
        return f"{WHAT} is busy: {BUSY[code]}"
    if isinstance(cause, redis.TimeoutError):
        return f"{WHAT} did not answer within {socket_timeout_s:g} s"
    if isinstance(cause, redis.ConnectionError):
        return f"{WHAT} unreachable"
    return None


def refused(error: BaseException) -> bool:
    """Redis answered `error`, refusing writes until someone fixes it (REFUSALS)."""
    cause = redis_error_in(error)
    return cause is not None and reply_code(cause) in REFUSALS


def reply_code(error: redis.RedisError) -> str:
    """The code an error reply starts with (`OOM`, `MISCONF`), also when
    redis-py names the command of a pipeline first; "" without one."""
    if error.status_code:  # the codes redis-py has classes for, stripped from the text
        return error.status_code
    _, _, reply = str(error).rpartition("caused error: ")  # "Command # 1 (...) of pipeline ..."
    first = reply.split(" ", 1)[0]
    return first if first.isupper() else ""


def redis_error_in(error: BaseException) -> redis.RedisError | None:
    """`error`, or the first redis-py error it was raised from."""
    chain: list[BaseException] = []
    found: BaseException | None = error
    while found is not None and found not in chain:  # a chain may loop
        if isinstance(found, redis.RedisError):
            return found
        chain.append(found)
        found = found.__cause__ or found.__context__
    return None
