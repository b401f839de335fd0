"""The RPCs of `inference.GRPCInferenceService`, over the parts HTTP's /v2
routes use (service.routes.v2): the same predictor and its per-process
cache, catalog, version labels, keys, metrics and prediction log.

Keys: ServerLive and ServerReady need none (HTTP's /v2/health/ neither);
every other RPC needs `authorization: Bearer <key>` metadata, of any role
(a `predict` key may read metadata and infer over HTTP too). Errors are
status codes with HTTP's messages: a 400 is INVALID_ARGUMENT (too many rows
RESOURCE_EXHAUSTED), 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
NOT_FOUND, 503 UNAVAILABLE, anything unexpected INTERNAL (logged). The
repository RPCs are not served: gRPC answers them UNIMPLEMENTED.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import redis

from models.errors import FitserveError
from models.serving.samples import TooManyRows
from service import auth, open_inference
from service.converters import model_name, version_or_label
from service.error_handlers import UNEXPECTED, redis_unavailable
from service.errors import http_status
from service.grpc_api import protocol
from service.grpc_api.tensors import request_payload, response_message
from service.metrics import count_predictions
from service.prediction_sampling import log_prediction_outside_flask
from service.routes.version_labels import EXTENSION as LABELS
from service.routes.version_labels import pin_version

if TYPE_CHECKING:
    from flask import Flask

    from models.serving.version_labels import VersionLabels
    from service.context import Services

log = logging.getLogger(__name__)

STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
# The RPCs served; the protocol's other two (the model repository's) are not.
RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
        "ModelInfer")  # fmt: skip
ServerLiveResponse = protocol.message_class("ServerLiveResponse")
ServerReadyResponse = protocol.message_class("ServerReadyResponse")
ModelReadyResponse = protocol.message_class("ModelReadyResponse")
ServerMetadataResponse = protocol.message_class("ServerMetadataResponse")
ModelMetadataResponse = protocol.message_class("ModelMetadataResponse")


def status_of(error: FitserveError) -> grpc.StatusCode:
    """The gRPC status of an error, from the HTTP status it has (service.errors)."""
    if isinstance(error, TooManyRows):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return STATUS_BY_HTTP.get(http_status(error), grpc.StatusCode.INTERNAL)


class InferenceServicer:
    """The RPCs over one app's parts."""

    def __init__(self, app: Flask) -> None:
        self.parts: Services = app.extensions["fitserve"]
        self.keys: auth.Keys = app.extensions[auth.EXTENSION]
        self.labels: VersionLabels = app.extensions[LABELS]

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's handler for grpc.server: each RPC of RPCS, its
        messages (de)serialized by the classes of inference.proto."""
        methods = {}
        for name in RPCS:
            method = protocol.SERVICE.methods_by_name[name]
            request, response = (protocol.message_class(kind.name)
                                 for kind in (method.input_type, method.output_type))  # fmt: skip
            methods[name] = grpc.unary_unary_rpc_method_handler(
                self._answering(name, getattr(self, name)),
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(protocol.SERVICE_NAME, methods)

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return ServerReadyResponse(ready=open_inference.server_ready(self.parts))

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        # Ready: loaded and warm. Asking never waits for a load; it starts one.
        self._role(context, "ModelReady")
        loaded = self.parts.predictor.ready(*self._model(request.name, request.version))
        return ModelReadyResponse(ready=loaded is not None)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._role(context, "ServerMetadata")
        return ServerMetadataResponse(**open_inference.server_metadata())

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._role(context, "ModelMetadata")
        name, version = self._model(request.name, request.version)
        metadata = open_inference.model_metadata(self.parts.catalog, name, version)
        return ModelMetadataResponse(**metadata)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        started = time.perf_counter()
        role = self._role(context, "ModelInfer")
        # The tensors are checked before the model is looked up, as over HTTP.
        payload = request_payload(request)
        name, version = self._model(request.model_name, request.model_version)
        parts = self.parts
        loaded = parts.predictor.get(name, version)
        x = open_inference.input_tensor(payload, loaded, parts.settings.limits.max_predict_rows)
        wanted = open_inference.requested_outputs(payload, open_inference.output_names(loaded))
        prediction = loaded.run(x)
        count_predictions(name, len(prediction.outputs))
        log_prediction_outside_flask(parts, name, x, prediction, "grpc", started, role)
        return response_message(
            payload, name, prediction, wanted, raw=bool(request.raw_input_contents)
        )

    def _model(self, name: str, version: str) -> tuple[str, int | None]:
        """The model and version a request names: a number, a label (looked
        up once, here) or empty for the latest; NotFound as HTTP's URLs say it."""
        model_name(name)
        return name, pin_version(self.labels, name, version_or_label(version) if version else None)

    def _role(self, context: grpc.ServicerContext, rpc: str) -> str:
        """The role of the call's key; KeyRefused (logged and counted) without one."""
        header = next((value for key, value in context.invocation_metadata()
                       if key == "authorization"), "")  # fmt: skip
        try:
            return self.keys.role_of_header(str(header))
        except auth.KeyRefused as refused:
            path = f"/{protocol.SERVICE_NAME}/{rpc}"
            auth.log_refusal("unauthorized", refused.reason, "gRPC", path, context.peer())
            raise

    def _answering(self, rpc: str, method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """`method`, its errors turned into status codes and messages."""
        timeout_s = self.parts.settings.redis.socket_timeout_s

        @functools.wraps(method)
        def answer(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return method(request, context)
            except FitserveError as error:
                status = status_of(error)
                if status == grpc.StatusCode.INTERNAL:
                    log.error("gRPC %s: server error: %s", rpc, error.message)
                _abort(context, status, error.message)
            except redis.RedisError as error:
                unavailable = redis_unavailable(error, timeout_s, writes=False)
                if unavailable is not None:
                    _abort(context, grpc.StatusCode.UNAVAILABLE, unavailable.message)
                log.exception("gRPC %s: unhandled error", rpc)
                _abort(context, grpc.StatusCode.INTERNAL, UNEXPECTED)
            except Exception:
                log.exception("gRPC %s: unhandled error", rpc)
                _abort(context, grpc.StatusCode.INTERNAL, UNEXPECTED)

        return answer


def _abort(context: grpc.ServicerContext, status: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(status, message)
    raise AssertionError("grpc's abort returns only by raising")  # for the type checker
