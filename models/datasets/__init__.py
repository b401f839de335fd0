"""Uploaded datasets: CSV, JSON and NPZ bodies parsed into checked arrays and stored by content.

parsing      media type -> format, and parse_dataset
csv_format   CSV bodies          json_format   JSON bodies          npz_format   NPZ bodies
csv_pieces   a CSV body read a piece at a time (loadtxt for clean pieces; also for predict bodies)
csv_table    a CSV's cells: numbers into arrays allocated once, labels, problems
json_numbers a JSON body's one large array of numbers read a piece at a time into float32
dataset      the Dataset type, and the float32/finite checks every format passes
problems     how parse failures are reported
target       describe_target: classes and counts, or numeric stats
store        DatasetStore: uploads parsed, described and stored once, keyed by content

Imports the base and models.storage (the bytes go through models.storage.dataset_files).
"""

from __future__ import annotations

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
