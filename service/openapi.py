"""The OpenAPI document, generated from the routes Flask knows and the same
pydantic models that validate the requests.

Bodies that a pydantic model validates are described by that model. Dataset
uploads and prediction inputs are parsed by hand (models.datasets,
models.serving.samples), so service.openapi_bodies describes them; responses say
every status a route answers with and the media types it answers in, so a
client (or a fuzzer) can hold the server to them.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel

from models.ids import DATASET_ID, JOB_ID, LABEL_NAME, MODEL_NAME, anchored
from service.openapi_bodies import (
    JSON_OBJECT,
    MEDIA_BODIES,
    QUERY_PARAMETERS,
    SUCCESSES,
    UNAVAILABLE_DESCRIPTION,
    WITHOUT_UNAVAILABLE,
)
from service.routes.version_labels import LabelRequest
from service.schemas import BatchPredictRequest, EvaluateRequest, JobRequest, TrainingSpec

# The JSON bodies each route validates with a pydantic model.
REQUEST_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/jobs"): JobRequest,
    ("POST", "/v1/models/{name}:batchPredict"): BatchPredictRequest,
    ("POST", "/v1/models/{name}/versions/{version}:batchPredict"): BatchPredictRequest,
    ("POST", "/v1/models/{name}/labels/{label}:batchPredict"): BatchPredictRequest,
    ("PUT", "/v1/models/{name}/labels/{label}"): LabelRequest,
    ("POST", "/v1/models/{name}:evaluate"): EvaluateRequest,
    ("POST", "/v1/models/{name}/versions/{version}:evaluate"): EvaluateRequest,
    ("POST", "/v1/models/{name}/labels/{label}:evaluate"): EvaluateRequest,
}
# What each path parameter accepts; anything else is a 404 that says why.
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "pattern": anchored(MODEL_NAME)},
    "version": {"type": "integer", "minimum": 1},
    "label": {"type": "string", "pattern": anchored(LABEL_NAME)},
    "dataset_id": {"type": "string", "pattern": anchored(DATASET_ID)},
    "job_id": {"type": "string", "pattern": anchored(JOB_ID)},
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# The Open Inference Protocol's error object, on /v2 (service.error_handlers).
OIP_ERROR = {
    "type": "object",
    "required": ["error", "code", "details"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
OIP_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/OipError"}}}
OPEN_PATHS = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/openapi.json",
              "/docs", "/")  # fmt: skip


def openapi_document(app: Flask) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR, "OipError": OIP_ERROR}
    for model in (JobRequest, TrainingSpec, BatchPredictRequest, EvaluateRequest, LabelRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(app, rule, path, method)
    return {
        "openapi": "3.1.0",
        "info": {"title": "fitserve", "version": "1",
                 "description": "Train dense Keras networks described as data; serve them."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }  # fmt: skip


def _operation(app: Flask, rule: Any, path: str, method: str) -> dict[str, Any]:
    view = app.view_functions[rule.endpoint]
    summary = (view.__doc__ or rule.endpoint).strip().splitlines()[0]
    operation: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method.lower()}.{len(path)}",
        "summary": summary,
        "responses": _responses(path, method),
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in sorted(rule.arguments)
    ]
    parameters += QUERY_PARAMETERS.get((method, path), [])
    if parameters:
        operation["parameters"] = parameters
    content = _request_content(path, method)
    if content is not None:
        operation["requestBody"] = {"required": True, "content": content}
    if path in OPEN_PATHS:
        operation["security"] = []
    return operation


def _responses(path: str, method: str) -> dict[str, Any]:
    successes = SUCCESSES.get((method, path), [("200", "OK", JSON_OBJECT)])
    responses: dict[str, Any] = {}
    for status, description, content in successes:
        responses[status] = {"description": description}
        if content is not None:
            responses[status]["content"] = content
    errors = OIP_ERROR_CONTENT if path == "/v2" or path.startswith("/v2/") else ERROR_CONTENT
    responses["4XX"] = {"description": "A client mistake, said where", "content": errors}
    if path not in WITHOUT_UNAVAILABLE:
        responses["503"] = {"description": UNAVAILABLE_DESCRIPTION, "content": JSON_OBJECT}
    return responses


def _request_content(path: str, method: str) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    model = REQUEST_MODELS.get((method, path))
    if model is not None:
        content["application/json"] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    content.update(MEDIA_BODIES.get((method, path), {}))
    return content or None
