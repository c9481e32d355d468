"""Image folders written the way users have them, for the data-loading tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_imagefolder(root: Path, classes: int, per_class: int, size: int = 40) -> Path:
    """A tiny ImageFolder (one sub-folder per class) of solid-colour-ish PNGs."""
    from PIL import Image

    rng = np.random.default_rng(len(str(root)))
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            pixels[..., c % 3] = 200
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def write_images(folder: Path, count: int, classes: int = 0) -> None:
    """``count`` random RGB images of other sizes than the models take; in ``classes`` class
    folders (ImageFolder) when given, else flat."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        where = folder / f"class{i % classes}" if classes else folder
        where.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (41, 57, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(where / f"{i}.png")


def calib_repeating_eval(root: Path, repeated: int) -> tuple[Path, Path]:
    """An eval ImageFolder (2 classes x 4 images) and a calib ImageFolder of 2 x 2 images of its
    own plus the first ``repeated`` eval images, copied under other names (``copy-<i>.png``)."""
    import shutil

    eval_dir = make_imagefolder(root / "val", classes=2, per_class=4)
    calib = make_imagefolder(root / "calibration-set", classes=2, per_class=2, size=41)
    for i, image in enumerate(sorted(eval_dir.rglob("*.png"))[:repeated]):
        shutil.copyfile(image, calib / image.parent.name / f"copy-{i}.png")
    return eval_dir, calib
