"""The four example programs and their data, as the benchmarks use them."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np

from models.datasets import Dataset, parse_dataset
from models.training.class_labels import LabelEncoding
from models.training.spec import ModelSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = {
    "breast_cancer": ("breast_cancer.csv", "text/csv"),
    "iris": ("iris.csv", "text/csv"),
    "diabetes": ("diabetes.csv", "text/csv"),
    "digits": ("digits.npz", "application/x-npz"),
}


def ensure_data() -> Path:
    folder = EXAMPLES / "data"
    if not all((folder / name).is_file() for name, _ in FILES.values()):
        runpy.run_path(str(EXAMPLES / "make_datasets.py"), run_name="__main__")
    return folder


def example_data(name: str) -> tuple[ModelSpec, Dataset, np.ndarray]:
    """The spec, the dataset and its labels encoded as the seed's code encodes
    them (one-hot for categorical_crossentropy: `to_categorical`)."""
    filename, media_type = FILES[name]
    spec = ModelSpec.model_validate(json.loads((EXAMPLES / f"{name}.json").read_text())["spec"])
    dataset = parse_dataset((ensure_data() / filename).read_bytes(), media_type)
    return spec, dataset, LabelEncoding.for_spec(spec, dataset.y).encode(dataset.y)
