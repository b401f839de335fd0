"""`fitserve-api`: the API under gunicorn (a production WSGI server).

gunicorn forks its workers before any of them builds the app, so Keras and
its backend are imported after the fork, in each worker (they are not
fork-safe). Bind address and worker counts come from FITSERVE_ settings.
"""

from __future__ import annotations

import os
import sys

from models.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    server = settings.server
    arguments = [
        sys.executable, "-m", "gunicorn", "service.app:create_app()",
        f"--bind={server.host}:{server.port}", f"--workers={server.workers}",
        f"--threads={server.threads}", "--worker-class=gthread", "--timeout=120",
        "--access-logfile=-",
        # One fixed control-socket path per user would be fought over by every
        # server on the host (tests start several); we do not use it.
        "--no-control-socket",
    ]  # fmt: skip
    os.execv(sys.executable, arguments + list(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
