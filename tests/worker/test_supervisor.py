"""The supervisor's back-off and stopping, with small real child processes
(the real worker under it: tests/e2e/test_supervised_worker.py)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import pytest

from worker.supervisor import Backoff, Supervisor

# The supervisor forks its child with a pre-exec hook (to die with its parent),
# which runs the fork hooks JAX registers when the suite has loaded it; the
# real supervisor never imports JAX.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

# Dies at once, as a worker that cannot start would.
DIES = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
# Waits, and leaves cleanly on SIGTERM, as a worker handing its job back does.
WAITS = [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\ntime.sleep(60)"]  # fmt: skip


def test_backoff_doubles_up_to_its_most_and_resets_after_a_steady_run() -> None:
    backoff = Backoff(first_s=1, most_s=30, steady_s=60)
    assert [backoff.after(uptime_s=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after(uptime_s=61) == 1
    assert backoff.after(uptime_s=2) == 2


def running(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(supervisor.run()), daemon=True)
    thread.start()
    return thread, code


def test_a_child_that_keeps_dying_is_restarted_ever_later_and_each_death_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "fitserve.supervisor")
    supervisor = Supervisor(DIES, Backoff(first_s=0.05, most_s=0.2, steady_s=60))
    thread, code = running(supervisor)
    deadline = time.monotonic() + 30
    while supervisor.restarts < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    supervisor.stop(signal.SIGTERM)
    thread.join(10)
    assert code == [0] and supervisor.restarts >= 4
    deaths = [r for r in caplog.records if "was killed by SIGKILL" in r.getMessage()]
    assert [r.restart for r in deaths[:4]] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert [r.delay_s for r in deaths[:4]] == [0.05, 0.1, 0.2, 0.2]  # type: ignore[attr-defined]
    assert "restart 1 in 0.05 s" in deaths[0].getMessage()


def test_stopping_sends_the_child_one_sigterm_and_returns_its_status() -> None:
    supervisor = Supervisor(WAITS)
    thread, code = running(supervisor)
    while supervisor.child is None:
        time.sleep(0.01)
    time.sleep(0.5)  # its SIGTERM handler is in place
    supervisor.stop(signal.SIGTERM)
    supervisor.stop(signal.SIGINT)  # a second ask changes nothing
    thread.join(10)
    assert code == [0] and supervisor.restarts == 0
