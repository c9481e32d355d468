"""What every data loader shares: listing and opening image files, carving a calibration split
off the eval images, and seeded synthetic inputs for a workload without data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.data import Split

if TYPE_CHECKING:
    import numpy as np

    from workloads.datasets.config import DataConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_image(path: Path, cfg: DataConfig, field: str) -> Any:
    """``path`` opened and decoded with PIL; an unreadable file names ``workload.data.<field>``."""
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except OSError as exc:
        raise cfg.error(field, "readable images", f"{path}: {exc}") from None
    return img


def carve(
    split: Split, cfg: DataConfig, *, stratify: np.ndarray | None = None
) -> tuple[Split, Split]:
    """(eval, calibration): ``cfg.calib_fraction`` of the eval images, seeded by ``cfg.seed``,
    become the calibration split and leave the eval split (an image is never in both).

    With ``stratify`` (class labels) the draw is stratified where every class has two images or
    more (a classifier calibrates on every class); otherwise it is a seeded random choice."""
    import numpy as np

    n = len(split)
    if n < 2:
        raise cfg.error("eval", "at least 2 images, to carve a calibration set from", n)
    if stratify is not None:
        keep, cal = _stratified(n, stratify, cfg.calib_fraction, cfg.seed)
    else:
        k = min(n - 1, max(1, round(n * cfg.calib_fraction)))
        cal = np.sort(np.random.default_rng(cfg.seed).permutation(n)[:k])
        keep = np.setdiff1d(np.arange(n), cal)
    return split.subset(keep), split.subset(cal)


def _stratified(n: int, labels: np.ndarray, fraction: float, seed: int) -> tuple[Any, Any]:
    import numpy as np
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    stratify = labels if np.bincount(labels).min() >= 2 else None
    try:
        keep, cal = train_test_split(idx, test_size=fraction, stratify=stratify, random_state=seed)
    except ValueError:
        keep, cal = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(keep), np.sort(cal)


def synthetic_splits(
    cfg: DataConfig,
    shape: tuple[int, int, int],
    pixels: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> tuple[Split, Split]:
    """(calibration, eval) splits of ``cfg.synthetic_samples`` seeded inputs of ``shape``, no
    labels: quality is then fidelity to the fp32 model.

    Without ``pixels`` the inputs are standard-normal values (already "normalised"; a
    classifier's inputs); with ``pixels = (mean, std)`` they are uniform pixels in [0, 1]
    normalised by them, each with an image id (the dense tasks map predictions back by it)."""
    import numpy as np

    rng = np.random.default_rng(cfg.seed)
    n = cfg.synthetic_samples

    def draw(name: str) -> Split:
        ids = tuple(f"{name}/{i}" for i in range(n))
        if pixels is None:
            return Split(rng.standard_normal((n, *shape), dtype=np.float32), ids=ids)
        mean = np.asarray(pixels[0], dtype=np.float32)[:, None, None]
        std = np.asarray(pixels[1], dtype=np.float32)[:, None, None]
        x = (rng.random((n, *shape), dtype=np.float32) - mean) / std
        infos = tuple({"image_id": i} for i in range(n))
        return Split(x.astype(np.float32), None, None, infos, ids)

    calib = draw("synthetic-calib")
    return calib, draw("synthetic")
