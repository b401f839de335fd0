"""gunicorn hooks for `fitserve-api` (passed as `--config python:service.gunicorn_conf`).

- Each worker process logs JSON (models.logs); our access log line comes
  from service.metrics, so gunicorn's own is off.
- Metrics: a worker that exits has its live gauges (loaded models) dropped
  from the multiprocess files, or a scrape would go on adding them up.
"""

from __future__ import annotations

import os
from typing import Any

from models.logs import configure_logging
from models.settings import Settings


def post_fork(server: Any, worker: Any) -> None:
    # The worker process's own Settings, from the FITSERVE_* environment it
    # inherits (create_app reads the same).
    configure_logging(Settings().log_format)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
