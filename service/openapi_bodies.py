"""The parts of the OpenAPI document that no pydantic model describes: bodies
parsed by hand (datasets, prediction inputs) and what each route answers.

Keyed by (method, OpenAPI path). A route missing here answers 200 with a JSON
object, and takes no body unless service.openapi.REQUEST_MODELS names one.
"""

from __future__ import annotations

from typing import Any

from models.jobs.store import STATES
from models.serving.exporter import FORMATS as EXPORT_FORMATS

JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}
TEXT = {"schema": {"type": "string"}}
BINARY = {"schema": {"type": "string", "format": "binary"}}
PREDICTIONS = {**JSON_OBJECT, "text/csv": TEXT, "application/x-npy": BINARY}
# An export download (service.export_download): `.keras` and `.onnx`, or a zipped SavedModel.
EXPORT_FILE = {"application/octet-stream": BINARY, "application/zip": BINARY}
EXPORTED = "The version as a file (Content-Disposition names it)"
EXPORT_FORMAT = {"name": "format", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": list(EXPORT_FORMATS),
                            "default": "keras"}}  # fmt: skip
# Each Server-Sent Event: its name, and a JSON object as its data.
EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"enum": ["snapshot", "epoch", "state"]},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"type": "object"}},
                "id": {"type": "string"},
            },
        }
    }
}  # fmt: skip
QUEUED = "Accepted: a job, queued; its Location header is where to follow it"
# V2 infer: JSON, or with binary outputs (the binary tensor data extension) the
# JSON header, Inference-Header-Content-Length bytes long, then the tensors' bytes.
BINARY_TENSORS = {
    "schema": {
        "type": "string",
        "format": "binary",
        "description": "A JSON header (Inference-Header-Content-Length bytes), then the tensors",
    }
}
INFERRED = {**JSON_OBJECT, "application/octet-stream": BINARY_TENSORS}

# (status, description, content or None) for each success a route answers with.
Successes = list[tuple[str, str, dict[str, Any] | None]]
SUCCESSES: dict[tuple[str, str], Successes] = {
    ("GET", "/"): [("200", "The dashboard page", {"text/html": TEXT})],
    ("GET", "/docs"): [("200", "A page that renders this document", {"text/html": TEXT})],
    ("GET", "/metrics"): [("200", "Prometheus text exposition", {"text/plain": TEXT})],
    ("POST", "/v1/datasets"): [
        ("201", "Stored: the dataset's record", JSON_OBJECT),
        ("200", "The same bytes were stored before: that record", JSON_OBJECT),
    ],
    ("DELETE", "/v1/datasets/{dataset_id}"): [("204", "Deleted", None)],
    ("POST", "/v2/models/{name}/infer"): [("200", "Outputs, JSON or binary", INFERRED)],
    ("POST", "/v2/models/{name}/versions/{version}/infer"): [
        ("200", "Outputs, JSON or binary", INFERRED)
    ],
    ("POST", "/v1/jobs"): [("202", QUEUED, JSON_OBJECT)],
    ("GET", "/v1/jobs/{job_id}/events"): [
        ("200", "Server-Sent Events: a snapshot, then each epoch and state", EVENT_STREAM)
    ],
    ("GET", "/v1/jobs/{job_id}/result"): [
        ("200", "Predictions: CSV unless Accept asks for JSON or NPY", PREDICTIONS)
    ],
    ("DELETE", "/v1/models/{name}/versions/{version}"): [("204", "Deleted", None)],
    ("POST", "/v1/models/{name}:batchPredict"): [("202", QUEUED, JSON_OBJECT)],
    ("POST", "/v1/models/{name}/versions/{version}:batchPredict"): [("202", QUEUED, JSON_OBJECT)],
    ("POST", "/v1/models/{name}/labels/{label}:batchPredict"): [("202", QUEUED, JSON_OBJECT)],
    ("DELETE", "/v1/models/{name}/labels/{label}"): [("204", "Deleted", None)],
    ("POST", "/v1/models/{name}:predict"): [
        ("200", "Predictions, in the format Accept picks", PREDICTIONS)
    ],
    ("POST", "/v1/models/{name}/versions/{version}:predict"): [
        ("200", "Predictions, in the format Accept picks", PREDICTIONS)
    ],
    ("POST", "/v1/models/{name}/labels/{label}:predict"): [
        ("200", "Predictions, in the format Accept picks", PREDICTIONS)
    ],
    ("GET", "/v1/models/{name}/versions/{version}/export"): [("200", EXPORTED, EXPORT_FILE)],
    ("GET", "/v1/models/{name}/labels/{label}/export"): [("200", EXPORTED, EXPORT_FILE)],
}
# Routes that never wait on Redis, the store or a model, so never answer 503.
WITHOUT_UNAVAILABLE = ("/", "/healthz", "/v2/health/live", "/openapi.json", "/docs")
UNAVAILABLE_DESCRIPTION = (
    "Unavailable: Redis (jobs, workers, readiness), the model store or a model that "
    "does not load; the body says which"
)


def described(media: dict[str, Any], description: str) -> dict[str, Any]:
    # OpenAPI 3.1 media type objects have no description: the schema carries it.
    return {"schema": {**media["schema"], "description": description}}


DATASET = {
    "text/csv": described(TEXT, "A header row, then one sample per line; ?target= names the label"),
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["x", "y"],
            "properties": {"x": {"type": "array"}, "y": {"type": "array"}},
        }
    },
    "application/x-npz": described(BINARY, "numpy.savez of arrays x and y"),
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        }
    },
}
PREDICT = {
    "application/json": {
        "schema": {
            "type": "object",
            "description": 'TF Serving: {"instances": [...]} (rows) or {"inputs": ...} (columns)',
            "properties": {"instances": {"type": "array"}, "inputs": {}},
        }
    },
    "text/csv": described(TEXT, "One sample per line, no label column"),
    "application/x-npy": described(BINARY, "One array of samples (numpy.save)"),
}
TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
    },
}
INFER = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "inputs": {"type": "array", "items": TENSOR},
                "outputs": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
        }
    },
    "application/octet-stream": BINARY_TENSORS,
}
INFER_HEADER = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
                "description": "Binary tensor data: the JSON header's length in bytes "
                               "(0: the body is the input tensor alone)"}  # fmt: skip
TRAINING_FORM = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["spec", "file"],
            "properties": {
                "spec": {"$ref": "#/components/schemas/TrainingSpec"},
                "file": {"type": "string", "format": "binary"},
            },
        }
    }
}
TARGET = {"name": "target", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "The CSV column holding the labels (default: the last)"}  # fmt: skip
# Query (and header) parameters, as OpenAPI parameter objects.
QUERY_PARAMETERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("POST", "/v1/datasets"): [TARGET],
    ("GET", "/v1/datasets"): [
        {"name": "page_token", "in": "query", "schema": {"type": "string"},
         "description": "next_page_token of the page before"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": 500}},
    ],
    ("POST", "/v1/jobs"): [TARGET],
    ("GET", "/v1/jobs"): [
        {"name": "state", "in": "query", "schema": {"enum": list(STATES)}},
        {"name": "model", "in": "query", "schema": {"type": "string"}},
        {"name": "page_token", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]*$"},
         "description": "next_page_token of the page before"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": 500}},
    ],
    ("GET", "/v1/models/{name}/predictions"): [
        {"name": "since", "in": "query", "schema": {"type": "string"},
         "description": "RFC 3339 time with its offset (default: an hour ago), or the next "
                        "cursor of the page before"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": 1000}},
    ],
    ("GET", "/v1/models/{name}/versions/{version}/export"): [EXPORT_FORMAT],
    ("POST", "/v2/models/{name}/infer"): [INFER_HEADER],
    ("POST", "/v2/models/{name}/versions/{version}/infer"): [INFER_HEADER],
    ("GET", "/v1/models/{name}/labels/{label}/export"): [EXPORT_FORMAT],
}  # fmt: skip
# Request bodies by media type, beside the JSON body a pydantic model describes.
MEDIA_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/datasets"): DATASET,
    ("POST", "/v1/jobs"): TRAINING_FORM,
    ("POST", "/v1/models/{name}:predict"): PREDICT,
    ("POST", "/v1/models/{name}/versions/{version}:predict"): PREDICT,
    ("POST", "/v1/models/{name}/labels/{label}:predict"): PREDICT,
    ("POST", "/v2/models/{name}/infer"): INFER,
    ("POST", "/v2/models/{name}/versions/{version}/infer"): INFER,
}
