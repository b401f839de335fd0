"""Writing predictions in the format the client's `Accept` header picks."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from flask import Request, Response

from service.json_provider import dump_bytes

RESPONSE_TYPES = ["application/json", "text/csv", "application/x-npy"]
CHUNK_ROWS = 65_536  # rows written at a time
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class PredictionRows(Protocol):
    """Outputs (rows x outputs) and their labels, read a chunk of rows at a
    time: a stored batch result (models.storage.results) or one in memory."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def has_labels(self) -> bool: ...

    def output_chunks(self, rows: int) -> Iterable[np.ndarray]: ...

    def label_chunks(self, rows: int) -> Iterable[list[Any]]: ...


@dataclass(frozen=True)
class InMemoryRows:
    outputs: np.ndarray
    labels: list[Any] | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.outputs.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.outputs.dtype

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def output_chunks(self, rows: int) -> Iterable[np.ndarray]:
        return (self.outputs[start : start + rows] for start in range(0, len(self.outputs), rows))

    def label_chunks(self, rows: int) -> Iterable[list[Any]]:
        labels = self.labels or []
        return (labels[start : start + rows] for start in range(0, len(labels), rows))


def render_predictions(
    request: Request, outputs: np.ndarray, labels: list[Any] | None, json_key: str,
    default: str = "application/json",
) -> Response:  # fmt: skip
    if default == "application/json" and len(outputs) <= CHUNK_ROWS and _any_type(request):
        # The common case (a few rows, JSON, no Accept or `*/*`) in one call,
        # the same bytes as _json writes: parsing the Accept header and the
        # chunked writer cost more than the rest of rendering a few rows.
        return Response(predictions_json(outputs, labels, json_key), mimetype="application/json")
    return render_rows(request, InMemoryRows(outputs, labels), json_key, default)


def predictions_json(outputs: np.ndarray, labels: list[Any] | None, json_key: str) -> bytes:
    """A few rows' answer in one call (service.fast_predict writes it too)."""
    answer: dict[str, Any] = {json_key: np.ascontiguousarray(outputs)}
    if labels is not None:
        answer["labels"] = labels
    return dump_bytes(answer)


def _any_type(request: Request) -> bool:
    """Whether the request takes any type: no Accept header, or `*/*`."""
    accept = request.headers.get("Accept")
    return accept is None or accept.strip() in ("*/*", "")


def render_rows(
    request: Request, rows: PredictionRows, json_key: str, default: str = "application/json"
) -> Response:
    """The rows in the format `Accept` picks, written CHUNK_ROWS at a time: a
    larger answer is streamed, never held whole (its text can be ten times
    the size of the outputs)."""
    # The default first: `Accept: */*` (or none) gets it.
    offered = [default, *(kind for kind in RESPONSE_TYPES if kind != default)]
    accept = request.accept_mimetypes.best_match(offered, default=default)
    writer = {"application/x-npy": _npy, "text/csv": _csv}.get(accept)
    body = writer(rows) if writer else _json(rows, json_key)
    if rows.shape[0] <= CHUNK_ROWS:
        return Response(b"".join(body), mimetype=accept)
    return Response(body, mimetype=accept)


def _npy(rows: PredictionRows) -> Iterator[bytes]:
    header = io.BytesIO()  # what np.save writes before the data
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(rows.dtype), "fortran_order": False,
                 "shape": rows.shape},
    )  # fmt: skip
    yield header.getvalue()
    for chunk in rows.output_chunks(CHUNK_ROWS):
        yield np.ascontiguousarray(chunk).tobytes()


def _csv(rows: PredictionRows) -> Iterator[bytes]:
    """Rows of numbers (in their shortest float32 text, as in JSON) and a label.
    orjson writes the numbers (seven times faster than the csv module, which
    wrote each float32 as its 17-digit float64); the csv module's quoting is kept."""
    columns = [f"output_{index}" for index in range(rows.shape[1])]
    yield _csv_line(columns + (["label"] if rows.has_labels else []))
    outputs = rows.output_chunks(CHUNK_ROWS)
    labels = rows.label_chunks(CHUNK_ROWS) if rows.has_labels else itertools.repeat(None)
    for chunk, chunk_labels in zip(outputs, labels, strict=False):  # repeat() never ends
        if not len(chunk):
            continue
        if np.isfinite(chunk).all():
            numbers = dump_bytes(np.ascontiguousarray(chunk))[2:-2].split(b"],[")
        else:  # orjson writes null for these; the csv module nan and inf
            numbers = [_csv_line(row)[:-2] for row in chunk.tolist()]
        if chunk_labels is None:
            yield b"\r\n".join(numbers) + b"\r\n"
            continue
        cells = {label: _csv_line([_cell(label)])[:-2] for label in set(chunk_labels)}
        yield b"".join(
            b"%b,%b\r\n" % (row, cells[label])
            for row, label in zip(numbers, chunk_labels, strict=True)
        )


def _csv_line(fields: list[Any]) -> bytes:
    """One row as the csv module writes it, quoting what needs it."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(fields)
    return buffer.getvalue().encode()


def _json(rows: PredictionRows, json_key: str) -> Iterator[bytes]:
    """`{json_key: [...], "labels": [...]}` as orjson writes it whole, a chunk at a time."""
    yield b"{" + dump_bytes(json_key) + b":["
    outputs = rows.output_chunks(CHUNK_ROWS)
    yield from _items(dump_bytes(np.ascontiguousarray(chunk)) for chunk in outputs)
    yield b"]"
    if rows.has_labels:
        yield b',"labels":['
        yield from _items(dump_bytes(chunk) for chunk in rows.label_chunks(CHUNK_ROWS))
        yield b"]"
    yield b"}"


def _items(arrays: Iterable[bytes]) -> Iterator[bytes]:
    """The items of JSON arrays, as one array's: their brackets off, commas between."""
    first = True
    for array in arrays:
        if len(array) > 2:  # not "[]"
            yield array[1:-1] if first else b"," + array[1:-1]
            first = False


def _cell(label: Any) -> Any:
    if isinstance(label, str) and label.startswith(FORMULA_STARTS):
        return "'" + label
    return label
