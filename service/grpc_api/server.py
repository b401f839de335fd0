"""The gRPC server of one API worker process, beside granian's HTTP.

Each granian worker process builds the app after the fork (service.main's
`app()`) and starts its own gRPC server there: gRPC's threads and sockets do
not survive a fork. Every process binds the port with SO_REUSEPORT, so the
kernel spreads connections across them as it does HTTP's, and each answers
from its own model cache, the one its HTTP requests use. `fitserve-api`
checks the port is free before granian starts (service.main): SO_REUSEPORT
would otherwise share it silently with another server of the same user.

Stopped gracefully when its process stops: calls in flight get STOP_GRACE_S
to finish, new ones are refused.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
from concurrent.futures import ThreadPoolExecutor

import grpc
from flask import Flask

from models.settings import Settings
from service.grpc_api.servicer import InferenceServicer

log = logging.getLogger(__name__)

# Below granian's STOP_TIMEOUT_S (service.main), after which a worker is killed.
STOP_GRACE_S = 10.0


def address(host: str, port: int) -> str:
    """`host:port` as gRPC takes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_server(app: Flask, port: int) -> tuple[grpc.Server, int]:
    """The app's gRPC server bound to `port` (0: any free one), not started,
    and the port it got."""
    settings: Settings = app.extensions["fitserve"].settings
    server = grpc.server(
        ThreadPoolExecutor(settings.grpc.threads, thread_name_prefix="grpc"),
        handlers=[InferenceServicer(app).handler()],
        options=[
            ("grpc.so_reuseport", 1),
            # The HTTP API's upload limit bounds a request here too.
            ("grpc.max_receive_message_length", settings.limits.max_upload_bytes),
            ("grpc.max_send_message_length", -1),
        ],
    )
    where = address(settings.server.host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as error:  # grpcio raises where it returned 0 before
        raise RuntimeError(f"gRPC could not listen on {where}: {error}") from None
    if not bound:
        raise RuntimeError(f"gRPC could not listen on {where}")
    return server, bound


def serve_beside_http(app: Flask) -> grpc.Server:
    """Start the app's gRPC server on `grpc.port` in this process, stopped
    when the process exits (granian's workers leave by multiprocessing's
    finalizers, not atexit: both are registered)."""
    settings: Settings = app.extensions["fitserve"].settings
    server, port = build_server(app, settings.grpc.port)
    server.start()
    log.info("gRPC (Open Inference Protocol) on %s", address(settings.server.host, port))

    def stop() -> None:
        log.info("gRPC stopping: calls in flight get %s s", STOP_GRACE_S)
        server.stop(STOP_GRACE_S).wait()

    # Before the prediction log's flush (exitpriority 10): its last records are written.
    multiprocessing.util.Finalize(None, stop, exitpriority=20)
    atexit.register(stop)
    return server
