"""The OpenAPI document, generated from the routes Flask knows and the same
pydantic models that validate the requests."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel

from service.schemas import BatchPredictRequest, JobRequest, TrainingSpec

# The JSON bodies each route validates with a pydantic model.
REQUEST_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/jobs"): JobRequest,
    ("POST", "/v1/models/{name}:batchPredict"): BatchPredictRequest,
    ("POST", "/v1/models/{name}/versions/{version}:batchPredict"): BatchPredictRequest,
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
OPEN_PATHS = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/openapi.json",
              "/docs", "/")  # fmt: skip


def openapi_document(app: Flask) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    for model in (JobRequest, TrainingSpec, BatchPredictRequest):
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
        "responses": {
            "200": {"description": "OK"},
            "4XX": {"description": "A client mistake, said where", "content": ERROR_CONTENT},
        },
    }  # fmt: skip
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer" if name == "version" else "string"}}
        for name in rule.arguments
    ]  # fmt: skip
    if parameters:
        operation["parameters"] = parameters
    model = REQUEST_MODELS.get((method, path))
    if model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }  # fmt: skip
    if path in OPEN_PATHS:
        operation["security"] = []
    return operation
