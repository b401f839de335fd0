"""Writes the example datasets into examples/data/ from scikit-learn's bundled
copies (no download): breast cancer (CSV, 0/1 labels), iris (CSV, species
names as labels), diabetes (CSV, numeric target) and 8x8 digits (NPZ images).

    .venv/bin/python examples/make_datasets.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn import datasets

OUT = Path(__file__).parent / "data"


def write_csv(path: Path, columns: list[str], x: np.ndarray, y: list[object]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row, label in zip(x.tolist(), y, strict=True):
            writer.writerow([*row, label])


def main() -> None:
    OUT.mkdir(exist_ok=True)
    cancer = datasets.load_breast_cancer()
    columns = [name.replace(" ", "_") for name in cancer.feature_names]
    # Standardised, as the seed's binary program prepares its features: raw
    # columns span 0.001 to 4000, which stalls a small network under adam.
    standard = (cancer.data - cancer.data.mean(axis=0)) / cancer.data.std(axis=0)
    write_csv(OUT / "breast_cancer.csv", [*columns, "malignant"], standard.round(6),
              [1 - int(label) for label in cancer.target])  # fmt: skip
    iris = datasets.load_iris()
    columns = [name.replace(" (cm)", "").replace(" ", "_") for name in iris.feature_names]
    write_csv(OUT / "iris.csv", [*columns, "species"], iris.data,
              [str(iris.target_names[label]) for label in iris.target])  # fmt: skip
    diabetes = datasets.load_diabetes()
    write_csv(OUT / "diabetes.csv", [*diabetes.feature_names, "progression"], diabetes.data,
              diabetes.target.tolist())  # fmt: skip
    digits = datasets.load_digits()
    # The MNIST program scales pixels to [0, 1] before fitting; these pixels are 0..16.
    images = (digits.images / 16.0).astype("float32")
    np.savez(OUT / "digits.npz", x=images, y=digits.target.astype("int64"))
    np.save(OUT / "digits_first5.npy", images[:5])  # a predict body for the walk-through
    print(f"wrote {', '.join(sorted(path.name for path in OUT.iterdir()))} in {OUT}")


if __name__ == "__main__":
    main()
