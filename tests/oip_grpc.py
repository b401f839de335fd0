"""gRPC test helpers: an app's gRPC server in this process, a channel that
speaks the protocol with our own messages (any request, hostile ones too),
and a child process for the clients nobody here wrote.

Triton's and KServe's clients both register `inference.*` in protobuf's
default pool, and whichever loads second fails (tests/e2e/test_oip_clients.py
loads KServe's): each runs in a spawned child of its own (`ClientProcess`),
which answers plain data (tests.foreign_grpc_clients)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from flask import Flask

from service.grpc_api import protocol
from service.grpc_api.server import build_server
from tests.conftest import API_KEY


@contextmanager
def grpc_server(app: Flask) -> Iterator[str]:
    """The app's gRPC server on a free port of loopback: its address."""
    server, port = build_server(app, 0)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


class OipChannel:
    """The protocol's RPCs by name, with inference.proto's own messages."""

    def __init__(self, address: str, key: str | None = API_KEY) -> None:
        self.channel = grpc.insecure_channel(address)
        self.metadata = [("authorization", f"Bearer {key}")] if key else []

    def call(self, rpc: str, request: Any = None, **fields: Any) -> Any:
        method = protocol.SERVICE.methods_by_name[rpc]
        request_class = protocol.message_class(method.input_type.name)
        response_class = protocol.message_class(method.output_type.name)
        stub = self.channel.unary_unary(
            f"/{protocol.SERVICE_NAME}/{rpc}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        sent = request if request is not None else request_class(**fields)
        return stub(sent, metadata=self.metadata, timeout=120)

    def refusal(self, rpc: str, request: Any = None, **fields: Any) -> tuple[grpc.StatusCode, str]:
        """The status and message of a call that must fail."""
        with pytest.raises(grpc.RpcError) as raised:
            self.call(rpc, request, **fields)
        error: Any = raised.value
        return error.code(), error.details()

    def close(self) -> None:
        self.channel.close()


class ClientProcess:
    """A spawned child process that runs functions of tests.foreign_grpc_clients."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(1, mp_context=context)

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(function, *args).result(timeout=300)

    def close(self) -> None:
        self.pool.shutdown()
