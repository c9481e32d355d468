"""Write farm/jobs/digits_slices.csv: the digits eval images in three slices by how much ink they
hold (the sum of their 8×8 pixel values: the thinnest third, the middle, the boldest third).

Faint, thin digits are the ones a quantized model loses first; the slices show it. Run from the
repository root: ``.venv/bin/python scripts/digits_slices.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from workloads.demos.digits import SPLIT_FRACTIONS, SPLIT_SEED, split_indices


def main() -> None:
    digits = load_digits()
    _, _, eval_idx = split_indices(digits.target, SPLIT_FRACTIONS, SPLIT_SEED)
    ink = digits.images.reshape(len(digits.images), -1).sum(axis=1)[eval_idx]
    low, high = np.quantile(ink, [1 / 3, 2 / 3])
    path = Path("farm/jobs/digits_slices.csv")
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "slice"])
        for i, amount in zip(eval_idx, ink, strict=True):
            name = "thin" if amount <= low else "bold" if amount > high else "medium"
            out.writerow([f"digits/{i:04d}", name])
    print(f"wrote {path}: {len(eval_idx)} images")


if __name__ == "__main__":
    main()
