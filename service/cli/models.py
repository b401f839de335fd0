"""The commands that show models: `models` (each with its versions),
`predict`, `evaluate`, `label` (list, point or delete a version label),
`export` (download a version) and `predictions` (the sampled log)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from service.cli.common import client_for, console, dataset_id, out
from service.client import ApiError

PREDICT_TYPES = {".csv": "text/csv", ".json": "application/json", ".npy": "application/x-npy"}
EXPORT_FORMATS = ("keras", "saved_model", "onnx")
# The most records one page of the prediction log holds (the API's limit).
PREDICTIONS_PAGE = 1000


def run_models(arguments: argparse.Namespace) -> int:
    listing = client_for(arguments).json("GET", "/v1/models")["models"]
    table = Table("name", "task", "latest", "versions")
    for model in listing:
        table.add_row(model["name"], model["task"], str(model["latest_version"]),
                      ", ".join(map(str, model["versions"])))  # fmt: skip
    out.print(table)
    return 0


def run_predict(arguments: argparse.Namespace) -> int:
    media_type = PREDICT_TYPES.get(arguments.file.suffix.lower())
    if media_type is None:
        raise ApiError(0, f"Samples are .csv, .npy or .json files. Received: {arguments.file}")
    path = f"/v1/models/{arguments.model}"
    if arguments.version is not None:
        path += f"/versions/{arguments.version}"
    output = arguments.output
    accept = PREDICT_TYPES.get(output.suffix.lower(), "") if output else "application/json"
    if output and not accept:
        raise ApiError(0, f"Predictions are written as .csv, .npy or .json. Received: {output}")
    response = client_for(arguments).request(
        "POST", f"{path}:predict", data=arguments.file.read_bytes(),
        headers={"Content-Type": media_type, "Accept": accept},
    )  # fmt: skip
    if output:
        output.write_bytes(response.content)
        console.print(f"wrote {output}")
        return 0
    answer = response.json()
    labels = answer.get("labels")
    table = Table("#", "prediction", *(["label"] if labels is not None else []))
    for index, prediction in enumerate(answer["predictions"]):
        values = ", ".join(f"{value:.4g}" for value in prediction)
        table.add_row(str(index), values, *([str(labels[index])] if labels is not None else []))
    out.print(table)
    return 0


def run_evaluate(arguments: argparse.Namespace) -> int:
    client = client_for(arguments)
    dataset = dataset_id(client, arguments.dataset, arguments.target)
    answer = client.evaluate(arguments.model, dataset, arguments.version)
    if arguments.json:
        out.print_json(data=answer)
        return 0
    table = Table("metric", "value")
    for name, value in answer["metrics"].items():
        table.add_row(name, f"{value:.6g}")
    out.print(table)
    console.print(f"{answer['rows']:,} rows of dataset {dataset}")
    return 0


def run_label(arguments: argparse.Namespace) -> int:
    client = client_for(arguments)
    path = f"/v1/models/{arguments.model}/labels"
    if arguments.delete or arguments.version is not None:
        if arguments.label is None:
            raise ApiError(0, "Name the label: fitserve label MODEL LABEL VERSION (or --delete).")
        if arguments.delete and arguments.version is not None:
            raise ApiError(0, "Either a version to point the label at or --delete, not both.")
        if arguments.delete:
            client.request("DELETE", f"{path}/{arguments.label}")
            console.print(f"deleted label {arguments.label!r} of {arguments.model}")
            return 0
        moved = client.json("PUT", f"{path}/{arguments.label}",
                            json={"version": arguments.version})  # fmt: skip
        previous = moved.get("previous")
        was = f" (was {previous})" if previous not in (None, moved["version"]) else ""
        console.print(f"{arguments.model}: {arguments.label} -> version {moved['version']}{was}")
        return 0
    if arguments.label is not None:  # one label, with its history
        shown = client.json("GET", f"{path}/{arguments.label}")
        out.print(f"{arguments.label} -> version {shown['version']}")
        table = Table("time", "from", "to", "role")
        for move in shown["history"]:
            table.add_row(move["time"], _version(move["from"]), _version(move["to"]),
                          str(move["role"]))  # fmt: skip
        out.print(table)
        return 0
    table = Table("label", "version")
    for name, version in client.json("GET", path)["labels"].items():
        table.add_row(name, str(version))
    out.print(table)
    return 0


def _version(version: int | None) -> str:
    return "-" if version is None else str(version)


def run_export(arguments: argparse.Namespace) -> int:
    written = client_for(arguments).download(
        f"/v1/models/{arguments.model}/versions/{arguments.version}/export", arguments.output,
        params={"format": arguments.format},
    )  # fmt: skip
    console.print(f"wrote {written} ({written.stat().st_size:,} bytes)")
    return 0


def run_predictions(arguments: argparse.Namespace) -> int:
    """Pages of the log (following `next`) until `--limit` records or the end."""
    client = client_for(arguments)
    path = f"/v1/models/{arguments.model}/predictions"
    since, left = arguments.since, arguments.limit
    records: list[dict[str, Any]] = []
    while left > 0:
        params: dict[str, Any] = {"limit": min(left, PREDICTIONS_PAGE)}
        if since:
            params["since"] = since
        page = client.json("GET", path, params=params)
        records += page["records"][:left]
        left -= len(page["records"])
        # A page may be empty and still name a `next`: the server lists at
        # most two days of hour folders a call, so a `since` long ago takes
        # several calls to reach the first record. The cursor only moves on.
        following = page.get("next")
        if not following or following == since:
            break
        since = following
    if arguments.json:
        for record in records:
            sys.stdout.write(json.dumps(record) + "\n")
        return 0
    table = Table("time", "version", "latency ms", "rows", "labels", "outputs")
    for record in records:
        outputs = record.get("outputs") or []
        labels = record.get("labels")
        table.add_row(str(record.get("time")), str(record.get("version")),
                      f"{record.get('latency_ms', 0):.3g}", str(len(outputs)),
                      _short(labels) if labels is not None else "", _short(outputs))  # fmt: skip
    out.print(table)
    return 0


def _short(value: Any, most: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= most else text[: most - 3] + "..."
