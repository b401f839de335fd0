"""`fitserve-api`: the API under granian, an HTTP server written in Rust that
runs the WSGI app in worker processes, a pool of Python threads in each.

granian reads requests in its own event loop and hands one to a Python
thread only once its headers are in, so a slow or idle client holds a
socket, never a thread (docs/reliability.md). A client has HEADER_TIMEOUT_S
to send its headers, and an idle keep-alive connection is closed after as
long. granian forks its workers before any builds the app (`app()` below),
so Keras and its backend, which are not fork-safe, are imported in each
worker. Address, processes and threads come from FITSERVE_ settings;
arguments to `fitserve-api` are passed on to granian. Each worker process
also serves the Open Inference Protocol over gRPC on `grpc.port`
(service.grpc_api.server), started in `app()`, after the fork.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from models.settings import Settings, settings_or_exit

if TYPE_CHECKING:
    from flask import Flask

HEADER_TIMEOUT_S = 10
# granian counts connections, not requests, against its limit per process
# (`--backpressure`): room for a thousand hostile ones and everyone else.
CONNECTIONS_PER_PROCESS = 4096
# On SIGTERM the requests in flight finish; a worker process still there
# after this long is killed (as gunicorn's graceful timeout did): an event
# stream never ends by itself, and a granian worker now and then does not stop.
STOP_TIMEOUT_S = 30
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def main(argv: list[str] | None = None) -> None:
    settings = settings_or_exit("fitserve-api")
    server = settings.server
    _check_grpc_port(settings)
    _metrics_folder(settings)
    _raise_open_files_limit(CONNECTIONS_PER_PROCESS * server.workers + 1024)
    # One BLAS thread per worker process: there is a worker per core already,
    # and OpenBLAS' threads spin on cores the other workers (and the server's
    # own threads) need: a large forward pass slows down many times over with
    # two threads per process on a busy machine (bench/RESULTS.md).
    for variable in BLAS_THREADS:
        os.environ.setdefault(variable, "1")
    arguments = [
        sys.executable, "-m", "granian", "--interface=wsgi", "--factory", "service.main:app",
        f"--host={server.host}", f"--port={server.port}", f"--workers={server.workers}",
        f"--blocking-threads={server.threads}", f"--backpressure={CONNECTIONS_PER_PROCESS}",
        "--backlog=2048", "--http=1", "--no-ws",
        f"--http1-header-read-timeout={HEADER_TIMEOUT_S * 1000}",
        "--respawn-failed-workers", f"--workers-kill-timeout={STOP_TIMEOUT_S}",
    ]  # fmt: skip
    os.execv(sys.executable, arguments + list(argv if argv is not None else sys.argv[1:]))


def app() -> Flask:
    """The app, built in each worker process (granian's `--factory`)."""
    from models.logs import configure_logging
    from service.app import create_app

    settings = Settings()
    configure_logging(settings.log_format)
    _forget_dead_processes()
    # A terminal's Ctrl-C reaches the whole process group: the server's
    # process, which then sends each worker SIGTERM, and each worker. A
    # granian worker that gets SIGINT and SIGTERM at once sometimes never
    # stops (until killed STOP_TIMEOUT_S later): the workers leave SIGINT to
    # the server. Blocked here, before granian starts its threads, so in all.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    app = create_app(settings)
    if settings.grpc.port:
        from service.grpc_api.server import serve_beside_http

        serve_beside_http(app)  # its threads, too, leave SIGINT to the server
    return app


def _check_grpc_port(settings: Settings) -> None:
    """Stop with a clear message if the gRPC port is taken: the worker
    processes bind it with SO_REUSEPORT, which would share it silently with
    another server of this user (an earlier fitserve-api) and fail obscurely
    in each worker against anyone else's."""
    host, port = settings.server.host, settings.grpc.port
    if not port:
        return
    family, kind, _, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            probe.bind(where)
        except OSError as error:
            raise SystemExit(
                f"fitserve-api: the gRPC port {port} on {host} is taken ({error.strerror}): "
                "another server listens there (an earlier fitserve-api, Triton?). Stop it, or "
                "set FITSERVE_GRPC__PORT to a free port (0 turns gRPC off)."
            ) from None


def _metrics_folder(settings: Settings) -> None:
    """The worker processes' metric files (prometheus_client's multiprocess
    mode): one folder per server, emptied at start so old counts do not add up."""
    folder = settings.data_dir / "run" / f"metrics-{settings.server.port}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def _forget_dead_processes() -> None:
    """Drop the live gauges (loaded models) of worker processes that died:
    granian starts a new one in their place, and a scrape would go on adding
    up the dead one's. Their counters and histograms stay, as they should."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    from prometheus_client import multiprocess

    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def _raise_open_files_limit(wanted: int) -> None:
    """A socket per connection: the soft limit (often 1024) raised towards
    `wanted`, within the hard limit. granian's processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY
                                                else min(wanted, hard), hard))  # fmt: skip


if __name__ == "__main__":
    main()
