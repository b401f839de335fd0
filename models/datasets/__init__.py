"""Uploaded datasets: parsing CSV, JSON and NPZ bodies into arrays, and storing them by content.

parsing      media type -> format, and parse_dataset
csv_format   CSV bodies          json_format   JSON bodies          npz_format   NPZ bodies
dataset      the Dataset type, and the float32/finite checks every format passes
problems     how parse failures are reported
target       describe_target: classes and counts, or numeric stats
store        DatasetStore: datasets on disk, keyed by content
"""

from __future__ import annotations

# Not used here: tests patch os.rename through this package (`datasets.os`), as they did
# when it was one module; the patch lands on the os module that store.py calls.
import os as os

from models.datasets.dataset import Dataset
from models.datasets.npz_format import UNPACK_RATIO
from models.datasets.parsing import media_type_for_filename, parse_dataset
from models.datasets.store import DatasetStore
from models.datasets.target import describe_target

__all__ = [
    "UNPACK_RATIO",
    "Dataset",
    "DatasetStore",
    "describe_target",
    "media_type_for_filename",
    "parse_dataset",
]
