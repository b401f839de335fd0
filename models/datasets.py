"""Uploaded datasets: parsing CSV, JSON and NPZ bodies into arrays, and storing them by content."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from models import errors
from models.errors import InvalidDataset, Loc, MalformedBody, NotFound

_FORMATS = {
    "text/csv": "csv",
    "application/json": "json",
    "application/x-npz": "npz",
    "application/octet-stream": "npz",
}
_EXTENSIONS = {".csv": "text/csv", ".json": "application/json", ".npz": "application/x-npz"}
_ID = re.compile(r"[0-9a-f]{24}")
_MAX_PROBLEMS = 20
_MAX_SAMPLE_RANK = 4
_MAX_CLASSES = 50
_MAX_WHOLE = 2.0**53  # beyond this, float64 cannot tell whole numbers apart
_JSON_SHAPE = 'a JSON object {"x": [...], "y": [...]}'
Problem = dict[str, Any]
Locate = Callable[[tuple[int, ...]], tuple[Loc, str]]  # array index -> (loc, "where" text)


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # float32, shape (rows, *x_shape)
    y: np.ndarray  # 1-D int64/float32/str labels, or 2-D float32 multi-output targets


def media_type_for_filename(filename: str) -> str | None:
    return _EXTENSIONS.get(Path(filename).suffix.lower())


def parse_dataset(body: bytes, content_type: str, target: str | None = None) -> Dataset:
    return _parse(body, content_type, target)[0]


def _problem(loc: Loc, what: str, expected: str, received: object) -> Problem:
    return errors.problem(loc, f"{what}: expected {expected}. Received: {received}")


def _error(
    cls: type[errors.FitserveError], loc: Loc, what: str, expected: str, received: object
) -> errors.FitserveError:
    detail = _problem(loc, what, expected, received)
    return cls(detail["msg"], [detail])


def _fail(
    cls: type[errors.FitserveError], loc: Loc, what: str, expected: str, received: object
) -> NoReturn:
    raise _error(cls, loc, what, expected, received)


def _raise_first(problems: list[Problem]) -> None:
    if problems:
        raise InvalidDataset(problems[0]["msg"], problems[:_MAX_PROBLEMS])


def _format(content_type: str) -> str:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _FORMATS:
        _fail(
            errors.UnsupportedMediaType,
            ["header", "Content-Type"],
            "The dataset's media type is not supported",
            f"one of {', '.join(_FORMATS)}",
            repr(content_type),
        )
    return _FORMATS[media_type]


def _parse(body: bytes, content_type: str, target: str | None) -> tuple[Dataset, str, str | None]:
    fmt = _format(content_type)
    if not body or body.isspace():
        _fail(
            InvalidDataset,
            ["body"],
            "The dataset is empty",
            f"a {fmt.upper()} body with at least one row",
            f"{len(body)} bytes",
        )
    if fmt == "csv":
        return _parse_csv(body, target)
    return _finish(*(_parse_json(body) if fmt == "json" else _parse_npz(body))), fmt, None


def _parse_csv(body: bytes, target: str | None) -> tuple[Dataset, str, str]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail(
            MalformedBody,
            ["body"],
            "The CSV body is not valid UTF-8",
            "UTF-8 text",
            f"byte {body[exc.start]:#04x} at offset {exc.start}",
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    try:  # line_num, read after each row, is the file line where that row ends
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        _fail(
            MalformedBody,
            ["body", "line", reader.line_num],
            f"Line {reader.line_num} is not valid CSV",
            "RFC 4180 fields",
            exc,
        )
    while rows and not any(field.strip() for field in rows[-1][1]):
        rows.pop()
    if len(rows) < 2:
        _fail(
            InvalidDataset,
            ["body"],
            "The CSV body has no data rows",
            "a header row and at least one data row",
            f"{len(rows)} line(s)",
        )
    header = [name.strip() for name in rows[0][1]]
    label_at = _label_column(header, target)
    features = [i for i in range(len(header)) if i != label_at]
    lines = [line for line, _ in rows[1:]]
    x = np.zeros((len(lines), len(features)), dtype=np.float64)
    labels: list[str] = []
    problems: list[Problem] = []
    for r, (line, row) in enumerate(rows[1:]):
        if len(problems) >= _MAX_PROBLEMS:
            break
        if len(row) != len(header):
            where = (
                f"column {header[len(row)]!r} is missing"
                if len(row) < len(header)
                else f"column {len(header) + 1} has no header"
            )
            problems.append(
                _problem(
                    ["body", "line", line],
                    f"Line {line} has {len(row)} fields, {where}",
                    f"{len(header)} fields, one per header column",
                    row,
                )
            )
            continue
        try:
            x[r] = [float(row[i]) for i in features]
        except ValueError:
            problems += [
                _problem(
                    ["body", "line", line, header[i]],
                    f"Line {line}, column {header[i]!r}",
                    "a number",
                    repr(row[i]),
                )
                for i in features
                if not _is_float(row[i])
            ]
        labels.append(row[label_at].strip())
        if not labels[-1]:
            problems.append(
                _problem(
                    ["body", "line", line, header[label_at]],
                    f"Line {line}, column {header[label_at]!r}",
                    "a label",
                    repr(row[label_at]),
                )
            )
    _raise_first(problems)

    def cell(row: int, column: int) -> tuple[Loc, str]:
        return (
            ["body", "line", lines[row], header[column]],
            f"Line {lines[row]}, column {header[column]!r}",
        )

    x32 = _checked_float32(x, lambda i: cell(i[0], features[i[1]]))
    if all(_is_float(label) for label in labels):
        y = _numeric_labels(
            np.array([float(label) for label in labels]), lambda i: cell(i[0], label_at)
        )
    else:
        y = np.array(labels, dtype=str)
    return Dataset(x32, y), "csv", header[label_at]


def _label_column(header: list[str], target: str | None) -> int:
    if len(header) < 2:
        _fail(
            InvalidDataset,
            ["body", "line", 1],
            "The CSV header has too few columns",
            "at least one feature column and a label column",
            header,
        )
    for i, name in enumerate(header):
        if not name or name in header[:i]:
            _fail(
                InvalidDataset,
                ["body", "line", 1],
                f"The CSV header's column {i + 1} is empty or repeated",
                "unique column names",
                header,
            )
    if target is None:
        return len(header) - 1
    if target.strip() not in header:
        _fail(
            InvalidDataset,
            ["query", "target"],
            f"The target column {target!r} is not in the CSV header",
            f"one of {header}",
            repr(target),
        )
    return header.index(target.strip())


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_json(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad syntax or encoding, or nested too deep
        _fail(MalformedBody, ["body"], "The body is not valid JSON", _JSON_SHAPE, exc)
    if not isinstance(data, dict):
        _fail(
            MalformedBody,
            ["body"],
            "The JSON body is not an object",
            _JSON_SHAPE,
            type(data).__name__,
        )
    for key in ("x", "y"):
        if not isinstance(data.get(key), list):
            _fail(
                MalformedBody,
                ["body", key],
                f"The JSON body has no {key!r} array",
                _JSON_SHAPE,
                f"{type(data.get(key)).__name__} for {key!r}",
            )
    return _json_x(data["x"]), _json_y(data["y"])


def _json_x(x: list[Any]) -> np.ndarray:
    try:
        array = np.asarray(x)
        if array.dtype.kind in "iuf":
            return array
    except ValueError:  # numpy refuses ragged nesting
        pass
    problems = []
    first = _nested_shape(x[0])
    for i, sample in enumerate(x):
        if (shape := _nested_shape(sample)) is None or shape != first:
            problems.append(
                _problem(
                    ["body", "x", i],
                    f"Sample {i} of x is shaped unlike the others",
                    f"the shape of sample 0, {_shape_text(first)}"
                    if i and first is not None
                    else "nested lists of equal lengths",
                    _shape_text(shape),
                )
            )
        elif bad := _non_number(sample):
            problems.append(
                _problem(
                    ["body", "x", i],
                    f"Sample {i} of x holds a non-number",
                    "numbers only",
                    repr(bad[0]),
                )
            )
        if len(problems) >= _MAX_PROBLEMS:
            break
    _raise_first(problems)
    _fail(
        InvalidDataset,
        ["body", "x"],
        "x cannot be read as numbers",
        "numbers within float range",
        "values numpy cannot convert",
    )


def _nested_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of nested lists: () for a scalar, None when ragged."""
    if not isinstance(value, list):
        return ()
    shapes = {_nested_shape(item) for item in value}
    inner = shapes.pop() if len(shapes) == 1 else () if not shapes else None
    return None if inner is None else (len(value), *inner)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "ragged nested lists" if shape is None else f"shape {list(shape)}"


def _non_number(value: Any) -> tuple[Any] | None:
    if isinstance(value, list):
        return next(filter(None, map(_non_number, value)), None)
    # bool is an int subclass, but true/false among features is almost always a mistake.
    return None if isinstance(value, int | float) and not isinstance(value, bool) else (value,)


def _json_y(y: list[Any]) -> np.ndarray:
    expected = _label_kind(y[0]) if y else "a number"
    for i, value in enumerate(y):
        if (kind := _label_kind(value)) is None or kind != expected:
            _fail(
                InvalidDataset,
                ["body", "y", i],
                f"Label {i} of y is not valid",
                f"{expected}, like label 0" if expected else "a number, string or number list",
                repr(value),
            )
    return np.array(y, dtype=str if expected == "a string" else np.float64)


def _label_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "a string"
    shape = _nested_shape(value)
    if _non_number(value) or shape is None or len(shape) > 1 or shape == (0,):
        return None
    return f"a list of {shape[0]} numbers" if shape else "a number"


def _parse_npz(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    expected = "an NPZ archive (numpy.savez) with arrays x and y"
    try:
        npz = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as exc:  # untrusted bytes fail in many ways; all mean "not an NPZ"
        _fail(MalformedBody, ["body"], "The body is not a readable NPZ archive", expected, exc)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        _fail(MalformedBody, ["body"], "The body is a single .npy array", expected, "one array")
    with npz:
        missing = [name for name in ("x", "y") if name not in npz.files]
        if missing:
            _fail(
                MalformedBody,
                ["body", missing[0]],
                f"The NPZ archive has no array {missing[0]!r}",
                expected,
                f"arrays {npz.files}",
            )
        try:
            x, y = npz["x"], npz["y"]
        except ValueError as exc:
            if "allow_pickle" in str(exc):  # numpy's refusal to unpickle object arrays
                _fail(
                    InvalidDataset,
                    ["body"],
                    "The NPZ archive holds Python objects, which are never unpickled",
                    "numeric arrays (or strings for y)",
                    "dtype object",
                )
            _fail(MalformedBody, ["body"], "The NPZ archive is corrupt", expected, exc)
        except Exception as exc:  # zlib or zip errors inside an otherwise valid archive
            _fail(MalformedBody, ["body"], "The NPZ archive is corrupt", expected, exc)
    if x.dtype.kind not in "iuf":
        _fail(
            InvalidDataset,
            ["body", "x"],
            "Array 'x' is not numeric",
            "an integer or float dtype",
            f"dtype {x.dtype}",
        )
    if y.dtype.kind not in "iufbU" or (y.dtype.kind == "U" and y.ndim != 1):
        _fail(
            InvalidDataset,
            ["body", "y"],
            "Array 'y' holds unsupported labels",
            "numbers, or 1-D unicode strings",
            f"dtype {y.dtype}, shape {list(y.shape)}",
        )
    return x, y


def _finish(x: np.ndarray, y: np.ndarray) -> Dataset:
    if x.ndim == 0 or len(x) == 0 or x.ndim - 1 > _MAX_SAMPLE_RANK or x[0].size == 0:
        _fail(
            InvalidDataset,
            ["body", "x"],
            "x has no rows, empty samples or too high a rank",
            f"samples of rank 0 to {_MAX_SAMPLE_RANK}",
            f"shape {list(x.shape)}",
        )
    if y.ndim not in (1, 2) or len(y) != len(x) or 0 in y.shape:
        _fail(
            InvalidDataset,
            ["body", "y"],
            "y does not match x",
            f"{len(x)} labels, one per row of x",
            f"shape {list(y.shape)}",
        )
    x32 = _checked_float32(x, lambda i: (["body", "x", *i], f"Row {i[0]} of x, at x{list(i)}"))
    if y.dtype.kind != "U":
        y = _numeric_labels(y, lambda i: (["body", "y", *i], f"Row {i[0]} of y, at y{list(i)}"))
    return Dataset(x32.reshape(len(x32), -1) if x32.ndim == 1 else x32, y)


def _checked_float32(values: np.ndarray, locate: Locate) -> np.ndarray:
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
        result = values.astype(np.float32)
    problems = []
    for index in np.argwhere(~np.isfinite(result))[:_MAX_PROBLEMS]:
        loc, place = locate(tuple(int(i) for i in index))
        problems.append(
            _problem(loc, place, "a finite number within float32 range", values[tuple(index)])
        )
    _raise_first(problems)
    return result


def _numeric_labels(y: np.ndarray, locate: Locate) -> np.ndarray:
    if y.ndim == 1 and y.dtype.kind in "iub":
        return y.astype(np.int64)
    values = y.astype(np.float64)
    # nan and inf are never whole, so they reach the float32 check and are refused there.
    whole = y.ndim == 1 and np.all((values == np.round(values)) & (np.abs(values) < _MAX_WHOLE))
    return values.astype(np.int64) if whole else _checked_float32(values, locate)


def describe_target(y: np.ndarray) -> dict[str, Any]:
    if y.dtype.kind in "US":
        classes, counts = np.unique(y, return_counts=True)
        kind = "binary" if len(classes) == 2 else "categorical"
        return _class_summary(kind, [str(c) for c in classes], counts)
    values = y.astype(np.float64)
    if y.ndim == 1 and np.all(values == np.round(values)):
        classes, counts = np.unique(values, return_counts=True)
        if len(classes) == 2 or 3 <= len(classes) <= min(_MAX_CLASSES, len(y) / 2):
            kind = "binary" if len(classes) == 2 else "categorical"
            return _class_summary(kind, [int(c) for c in classes], counts)
    empty = values.size == 0  # never stored, but describe_target is public
    return {
        "kind": "numeric",
        "classes": [],
        "counts": {},
        "min": None if empty else float(values.min()),
        "max": None if empty else float(values.max()),
        "mean": None if empty else float(values.mean()),
        "outputs": 1 if y.ndim == 1 else int(y.shape[1]),
    }


def _class_summary(kind: str, classes: list[Any], counts: np.ndarray) -> dict[str, Any]:
    return {
        "kind": kind,
        "classes": classes,
        "counts": {str(c): int(n) for c, n in zip(classes, counts, strict=True)},
    }


class DatasetStore:
    """Datasets under `<root>/<id>/`, where the id is derived from the uploaded bytes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(
        self, body: bytes, content_type: str, target: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        content = hashlib.sha256(body)
        keyed = content.copy()
        if _format(content_type) == "csv":  # the same CSV with another label is another dataset
            keyed.update(b"\0target=" + (target or "").encode())
        dataset_id = keyed.hexdigest()[:24]
        if (self.root / dataset_id).is_dir():
            return self.get(dataset_id), False
        dataset, fmt, column = _parse(body, content_type, target)
        record = {
            "id": dataset_id,
            "rows": len(dataset.x),
            "x_shape": list(dataset.x.shape[1:]),
            "x_dtype": str(dataset.x.dtype),
            "target": {**describe_target(dataset.y), "column": column},
            "sha256": content.hexdigest(),
            "format": fmt,
            "bytes": len(body),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        # Built aside and renamed into place, so readers see all of a dataset or none of it.
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            np.savez(staging / "data.npz", x=dataset.x, y=dataset.y)
            (staging / "record.json").write_text(json.dumps(record))
            try:
                os.rename(staging, self.root / dataset_id)
            except OSError:
                if not (self.root / dataset_id).is_dir():
                    raise
                return self.get(dataset_id), False  # an identical upload won the race
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return record, True

    def get(self, dataset_id: str) -> dict[str, Any]:
        try:
            return json.loads((self._path(dataset_id) / "record.json").read_text())
        except FileNotFoundError:
            raise _not_found(dataset_id) from None

    def load(self, dataset_id: str) -> Dataset:
        try:
            with np.load(self._path(dataset_id) / "data.npz", allow_pickle=False) as npz:
                return Dataset(x=npz["x"], y=npz["y"])
        except FileNotFoundError:
            raise _not_found(dataset_id) from None

    def delete(self, dataset_id: str) -> None:
        # Moved aside first, so a reader never sees a half-deleted dataset.
        trash = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            os.rename(self._path(dataset_id), trash)
        except FileNotFoundError:
            raise _not_found(dataset_id) from None
        shutil.rmtree(trash, ignore_errors=True)

    def _path(self, dataset_id: str) -> Path:
        if not isinstance(dataset_id, str) or not _ID.fullmatch(dataset_id):
            raise _not_found(dataset_id)  # before any path is built from user input
        return self.root / dataset_id

    def list(self) -> list[dict[str, Any]]:
        records = []
        for entry in self.root.iterdir() if self.root.is_dir() else []:
            if _ID.fullmatch(entry.name):
                try:
                    records.append(json.loads((entry / "record.json").read_text()))
                except (FileNotFoundError, NotADirectoryError):  # deleted while listing
                    continue
        return sorted(records, key=lambda r: (r["created_at"], r["id"]), reverse=True)


def _not_found(dataset_id: object) -> errors.FitserveError:
    return _error(
        NotFound,
        ["path", "dataset_id"],
        f"No dataset has id {dataset_id!r}",
        "the id of a stored dataset (24 lowercase hex digits)",
        repr(dataset_id),
    )
