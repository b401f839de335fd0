"""NPZ bodies: a numpy.savez archive with arrays x and y, read without ever unpickling."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from models.datasets.problems import fail, preview
from models.errors import InvalidDataset, MalformedBody

# What the arrays of one upload may unpack to, as a multiple of the upload limit
# (the API passes UNPACK_RATIO times its limit). A compressed archive of a few
# kilobytes can declare gigabytes of zeros, so the headers are read first.
UNPACK_RATIO = 8
MAX_ARRAY_BYTES = UNPACK_RATIO * 256 * 2**20  # for the default upload limit, 256 MiB
# The members numpy.savez writes. Arrays are read by these exact names: numpy
# would also take a member named plain `x`, whose header nobody checked.
MEMBERS = {"x": "x.npy", "y": "y.npy"}
_EXPECTED = "an NPZ archive (numpy.savez) with arrays x and y"


def _unpacked_bytes(npz: Any, name: str) -> int:
    """The bytes the member's array takes once unpacked and kept, read from its
    .npy header without loading it. Numbers count at float32 or wider: the
    features are kept as float32, so int8 takes four times its archived size."""
    try:
        with npz.zip.open(MEMBERS[name]) as member:
            version = np.lib.format.read_magic(member)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)  # fmt: skip
            shape, _, dtype = read_header(member)
    except Exception as exc:  # untrusted bytes fail in many ways; all mean "no .npy header"
        fail(
            MalformedBody,
            [name],
            f"The NPZ archive's member {MEMBERS[name]!r} is not a .npy array",
            _EXPECTED,
            exc,
        )
    itemsize = dtype.itemsize if dtype.kind in "USV" else max(dtype.itemsize, 4)
    return int(np.prod(shape, dtype=np.float64)) * itemsize


def _refuse_bombs(npz: Any, max_array_bytes: int) -> None:
    total = sum(_unpacked_bytes(npz, name) for name in MEMBERS)
    if total > max_array_bytes:
        fail(
            InvalidDataset,
            [],
            f"The NPZ archive's arrays would unpack to {total:,} bytes at float32",
            f"at most {max_array_bytes:,} bytes of arrays (numbers counted at float32 or "
            "wider, the dtype they are kept in)",
            f"{total:,} bytes declared by the arrays' headers",
        )


def parse_npz(
    body: bytes | bytearray, max_array_bytes: int = MAX_ARRAY_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    try:
        npz = np.load(_BufferFile(body), allow_pickle=False)
    except Exception as exc:  # untrusted bytes fail in many ways; all mean "not an NPZ"
        fail(MalformedBody, [], "The body is not a readable NPZ archive", _EXPECTED, exc)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        fail(MalformedBody, [], "The body is a single .npy array", _EXPECTED, "one array")
    with npz:
        present = npz.zip.namelist() if npz.zip is not None else []  # None once closed
        missing = [name for name, member in MEMBERS.items() if member not in present]
        if missing:
            fail(
                MalformedBody,
                [missing[0]],
                f"The NPZ archive has no array {missing[0]!r} (member {MEMBERS[missing[0]]!r})",
                _EXPECTED,
                f"members {preview(present)}",
            )
        _refuse_bombs(npz, max_array_bytes)
        try:
            x, y = npz[MEMBERS["x"]], npz[MEMBERS["y"]]
        except ValueError as exc:
            if "allow_pickle" in str(exc):  # numpy's refusal to unpickle object arrays
                fail(
                    InvalidDataset,
                    [],
                    "The NPZ archive holds Python objects, which are never unpickled",
                    "numeric arrays (or strings for y)",
                    "dtype object",
                )
            fail(MalformedBody, [], "The NPZ archive is corrupt", _EXPECTED, exc)
        except Exception as exc:  # zlib or zip errors inside an otherwise valid archive
            fail(MalformedBody, [], "The NPZ archive is corrupt", _EXPECTED, exc)
    if x.dtype.kind not in "iuf":
        fail(
            InvalidDataset,
            ["x"],
            "Array 'x' is not numeric",
            "an integer or float dtype",
            f"dtype {x.dtype}",
        )
    if y.dtype.kind not in "iufbU" or (y.dtype.kind == "U" and y.ndim != 1):
        fail(
            InvalidDataset,
            ["y"],
            "Array 'y' holds unsupported labels",
            "numbers, or 1-D unicode strings",
            f"dtype {y.dtype}, shape {list(y.shape)}",
        )
    return x, y


class _BufferFile(io.RawIOBase):
    """A read-only file over a body in memory, without copying it (io.BytesIO
    copies a bytearray, the type the API reads bodies into)."""

    def __init__(self, buffer: bytes | bytearray) -> None:
        self._view = memoryview(buffer)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        size = max(0, min(len(target), len(self._view) - self._position))
        target[:size] = self._view[self._position : self._position + size]
        self._position += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position
