"""Writing predictions in the format the client's `Accept` header picks."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from flask import Request, Response

from service.json_provider import dump_bytes

RESPONSE_TYPES = ["application/json", "text/csv", "application/x-npy"]
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_predictions(
    request: Request, outputs: np.ndarray, labels: list[Any] | None, json_key: str,
    default: str = "application/json",
) -> Response:  # fmt: skip
    # The default first: `Accept: */*` (or none) gets it.
    offered = [default, *(kind for kind in RESPONSE_TYPES if kind != default)]
    accept = request.accept_mimetypes.best_match(offered, default=default)
    if accept == "application/x-npy":
        buffer = io.BytesIO()
        np.save(buffer, outputs)
        return Response(buffer.getvalue(), mimetype="application/x-npy")
    if accept == "text/csv":
        return Response(_csv(outputs, labels), mimetype="text/csv")
    body: dict[str, Any] = {json_key: outputs}
    if labels is not None:
        body["labels"] = labels
    return Response(dump_bytes(body), mimetype="application/json")


def _csv(outputs: np.ndarray, labels: list[Any] | None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [f"output_{index}" for index in range(outputs.shape[1])]
    writer.writerow(columns + (["label"] if labels is not None else []))
    if labels is None:
        writer.writerows(outputs.tolist())
    else:
        safe = [_cell(label) for label in labels]
        writer.writerows(row + [label] for row, label in zip(outputs.tolist(), safe, strict=True))
    return buffer.getvalue()


def _cell(label: Any) -> Any:
    if isinstance(label, str) and label.startswith(FORMULA_STARTS):
        return "'" + label
    return label
