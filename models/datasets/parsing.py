"""Choosing a body's format from its media type, and parsing it into a Dataset."""

from __future__ import annotations

from pathlib import Path

from models import errors
from models.datasets.csv_format import parse_csv
from models.datasets.csv_pieces import Body
from models.datasets.dataset import Dataset, finish
from models.datasets.json_format import parse_json
from models.datasets.npz_format import MAX_ARRAY_BYTES, parse_npz
from models.datasets.problems import fail
from models.errors import InvalidDataset
from models.records import DatasetFormat

_FORMATS: dict[str, DatasetFormat] = {
    "text/csv": "csv",
    "application/json": "json",
    "application/x-npz": "npz",
    "application/octet-stream": "npz",
}
_EXTENSIONS = {".csv": "text/csv", ".json": "application/json", ".npz": "application/x-npz"}


def media_type_for_filename(filename: str) -> str | None:
    return _EXTENSIONS.get(Path(filename).suffix.lower())


def parse_dataset(body: Body, content_type: str, target: str | None = None) -> Dataset:
    return parse_upload(body, content_type, target)[0]


def format_of(content_type: str) -> DatasetFormat:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _FORMATS:
        fail(
            errors.UnsupportedMediaType,
            [],
            "The dataset's media type is not supported",
            f"one of {', '.join(_FORMATS)}",
            repr(content_type),
            argument="content_type",
        )
    return _FORMATS[media_type]


def parse_upload(
    body: Body, content_type: str, target: str | None, max_array_bytes: int = MAX_ARRAY_BYTES
) -> tuple[Dataset, DatasetFormat, str | None]:
    """The dataset, its format, and (for CSV only) the name of its label column.

    `max_array_bytes` bounds the arrays an upload may unpack to (a compressed
    NPZ can declare far more than it holds; a CSV's text labels can be long)."""
    fmt = format_of(content_type)
    if not body or body.isspace():
        fail(
            InvalidDataset,
            [],
            "The dataset is empty",
            f"a {fmt.upper()} body with at least one row",
            f"{len(body)} bytes",
        )
    if fmt == "csv":
        dataset, column = parse_csv(body, target, max_array_bytes)
        return dataset, fmt, column
    arrays = parse_json(body) if fmt == "json" else parse_npz(body, max_array_bytes)
    return finish(*arrays), fmt, None
