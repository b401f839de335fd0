"""`fitserve worker --supervised`: a training worker that comes back when it dies.

Runs `fitserve-worker` as a child and starts it again whenever it exits
unasked (a crash, the OOM killer, a SIGKILL), logging how it ended, the
restart's number and the delay: 1 s, doubled after each worker that died
within a minute of its start, up to 30 s. The dead worker's job comes back
on its own: the sweeper sends it again once its lease lapses, and it resumes
from its checkpoint. SIGTERM or SIGINT stops the supervisor: the worker gets
one SIGTERM (its job hands itself back) and the supervisor exits with its
status. The worker runs in a session of its own, so a terminal's Ctrl-C
reaches it once, through here; and it gets SIGTERM should the supervisor die
(Linux: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

from models.logs import configure_logging
from models.settings import Settings

log = logging.getLogger("fitserve.supervisor")

POLL_S = 0.1


@dataclass
class Backoff:
    """The delay before each restart: `first_s`, doubled after each quick
    death up to `most_s`, and `first_s` again after a child that ran `steady_s`."""

    first_s: float = 1.0
    most_s: float = 30.0
    steady_s: float = 60.0
    next_s: float = 1.0

    def __post_init__(self) -> None:
        self.next_s = self.first_s

    def after(self, uptime_s: float) -> float:
        if uptime_s >= self.steady_s:
            self.next_s = self.first_s
        delay = self.next_s
        self.next_s = min(self.next_s * 2, self.most_s)
        return delay


class Supervisor:
    def __init__(self, command: list[str], backoff: Backoff | None = None) -> None:
        self.command = command
        self.backoff = backoff or Backoff()
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.stopping = False

    def run(self) -> int:
        """Until stopped: the exit status to leave with."""
        while True:
            started = time.monotonic()
            self.child = self._start()
            code = self.child.wait()  # a signal's handler runs; the wait goes on
            if self.stopping:
                log.info("worker pid %d stopped: %s", self.child.pid, _ending(code),
                         extra={"pid": self.child.pid, **_status(code)})  # fmt: skip
                return code if code >= 0 else 128 - code
            uptime_s = time.monotonic() - started
            delay_s = self.backoff.after(uptime_s)
            self.restarts += 1
            log.warning(
                "worker pid %d %s after %.1f s; restart %d in %g s",
                self.child.pid, _ending(code), uptime_s, self.restarts, delay_s,
                extra={"pid": self.child.pid, **_status(code), "uptime_s": round(uptime_s, 1),
                       "restart": self.restarts, "delay_s": delay_s},
            )  # fmt: skip
            if self._sleep(delay_s):
                return 0

    def stop(self, signum: int, frame: FrameType | None = None) -> None:
        if self.stopping:
            return  # one SIGTERM is enough; a second would only cut the hand-back short
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            log.info("%s: stopping worker pid %d", signal.Signals(signum).name, child.pid)
            child.send_signal(signal.SIGTERM)

    def _start(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.info("worker started: pid %d%s", child.pid,
                 f" (restart {self.restarts})" if self.restarts else "",
                 extra={"pid": child.pid, "restart": self.restarts})  # fmt: skip
        if self.stopping:  # asked to stop while it was being started
            child.send_signal(signal.SIGTERM)
        return child

    def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True when asked to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return self.stopping


def _status(code: int) -> dict[str, int | str | None]:
    """The log's fields for a child's return code (-N: killed by signal N)."""
    if code < 0:
        return {"exit_code": None, "signal": signal.Signals(-code).name}
    return {"exit_code": code, "signal": None}


def _ending(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    configure_logging(Settings().log_format)
    command = [sys.executable, "-m", "worker.main", *(argv if argv is not None else sys.argv[1:])]
    supervisor = Supervisor(command)
    signal.signal(signal.SIGTERM, supervisor.stop)
    # Started in the background by a script, SIGINT is ignored: keep it so.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
