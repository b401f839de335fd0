"""`fitserve-api`: the API under gunicorn (a production WSGI server).

gunicorn forks its workers before any of them builds the app, so Keras and
its backend are imported after the fork, in each worker (they are not
fork-safe). Bind address and worker counts come from FITSERVE_ settings.
"""

from __future__ import annotations

import os
import shutil
import sys

from models.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    server = settings.server
    _metrics_folder(settings)
    arguments = [
        sys.executable, "-m", "gunicorn", "service.app:create_app()",
        f"--bind={server.host}:{server.port}", f"--workers={server.workers}",
        f"--threads={server.threads}", "--worker-class=gthread", "--timeout=120",
        "--config=python:service.gunicorn_conf",
        # One fixed control-socket path per user would be fought over by every
        # server on the host (tests start several); we do not use it.
        "--no-control-socket",
    ]  # fmt: skip
    os.execv(sys.executable, arguments + list(argv if argv is not None else sys.argv[1:]))


def _metrics_folder(settings: Settings) -> None:
    """The worker processes' metric files (prometheus_client's multiprocess
    mode): one folder per server, emptied at start so old counts do not add up."""
    folder = settings.data_dir / "run" / f"metrics-{settings.server.port}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


if __name__ == "__main__":
    main()
