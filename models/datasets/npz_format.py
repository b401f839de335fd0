"""NPZ bodies: a numpy.savez archive with arrays x and y, read without ever unpickling."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from models.datasets.problems import fail
from models.errors import InvalidDataset, MalformedBody

# What the arrays of one upload may unpack to. A compressed archive of a few
# kilobytes can declare gigabytes of zeros; its headers are read first.
MAX_ARRAY_BYTES = 2 * 2**30


def _refuse_bombs(npz: Any) -> None:
    total = 0
    for name in ("x", "y"):
        try:
            with npz.zip.open(f"{name}.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)  # fmt: skip
                shape, _, dtype = read_header(member)
        except Exception:  # an unreadable header: loading the array says what is wrong
            continue
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if total > MAX_ARRAY_BYTES:
        fail(
            InvalidDataset,
            ["body"],
            f"The NPZ archive's arrays would unpack to {total:,} bytes",
            f"at most {MAX_ARRAY_BYTES:,} bytes of arrays",
            f"{total:,} bytes declared",
        )


def parse_npz(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    expected = "an NPZ archive (numpy.savez) with arrays x and y"
    try:
        npz = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as exc:  # untrusted bytes fail in many ways; all mean "not an NPZ"
        fail(MalformedBody, ["body"], "The body is not a readable NPZ archive", expected, exc)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        fail(MalformedBody, ["body"], "The body is a single .npy array", expected, "one array")
    with npz:
        missing = [name for name in ("x", "y") if name not in npz.files]
        if missing:
            fail(
                MalformedBody,
                ["body", missing[0]],
                f"The NPZ archive has no array {missing[0]!r}",
                expected,
                f"arrays {npz.files}",
            )
        _refuse_bombs(npz)
        try:
            x, y = npz["x"], npz["y"]
        except ValueError as exc:
            if "allow_pickle" in str(exc):  # numpy's refusal to unpickle object arrays
                fail(
                    InvalidDataset,
                    ["body"],
                    "The NPZ archive holds Python objects, which are never unpickled",
                    "numeric arrays (or strings for y)",
                    "dtype object",
                )
            fail(MalformedBody, ["body"], "The NPZ archive is corrupt", expected, exc)
        except Exception as exc:  # zlib or zip errors inside an otherwise valid archive
            fail(MalformedBody, ["body"], "The NPZ archive is corrupt", expected, exc)
    if x.dtype.kind not in "iuf":
        fail(
            InvalidDataset,
            ["body", "x"],
            "Array 'x' is not numeric",
            "an integer or float dtype",
            f"dtype {x.dtype}",
        )
    if y.dtype.kind not in "iufbU" or (y.dtype.kind == "U" and y.ndim != 1):
        fail(
            InvalidDataset,
            ["body", "y"],
            "Array 'y' holds unsupported labels",
            "numbers, or 1-D unicode strings",
            f"dtype {y.dtype}, shape {list(y.shape)}",
        )
    return x, y
