"""What every data loader shares: listing and opening image files, carving a calibration split
off the eval images, and seeded synthetic inputs for a workload without data.
"""

from __future__ import annotations

from dataclasses import replace
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


def content_keys(split: Split) -> list[bytes]:
    """One digest per image of ``split``, of its preprocessed pixels: equal images (the same
    file twice, or a copy under another name) have equal keys."""
    import hashlib

    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in split.x]


def duplicates(calib: Split, ev: Split) -> list[tuple[str, str]]:
    """(calibration id, eval id) of every calibration image whose content repeats an eval
    image, in calibration order."""
    seen: dict[bytes, str] = {}
    for key, image in zip(content_keys(ev), ev.image_ids("eval"), strict=True):
        seen.setdefault(key, image)
    calib_ids = calib.image_ids("calib")
    return [(calib_ids[i], seen[k]) for i, k in enumerate(content_keys(calib)) if k in seen]


def check_calibration(calib: Split, ev: Split, cfg: DataConfig, origin: str) -> str:
    """Refuse calibration images that repeat eval images (checked by content, not by name):
    a model calibrated on the images it is judged on looks better than it is. Returns how the
    calibration set was chosen, for the card (``origin`` plus what the check found).
    ``[workload.data] allow_calib_overlap = true`` accepts an overlap, and the card says so."""
    found = duplicates(calib, ev)
    size = f"{len(calib)} images, {origin}"
    if not found:
        return f"{size}; no calibration image repeats an eval image (checked by content)"
    if cfg.allow_calib_overlap:
        return (
            f"{size}; {len(found)} calibration image(s) repeat eval images "
            "(allowed by `allow_calib_overlap = true`)"
        )
    first = ", ".join(f"{c} repeats eval image {e}" for c, e in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise cfg.error(
        "calib" if cfg.calib is not None else "eval",
        "calibration images that are not eval images (compared by content; "
        "`allow_calib_overlap = true` in [workload.data] accepts an overlap)",
        f"{len(found)} calibration image(s) that repeat eval images: {first}{more}",
    )


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

    def draw() -> Split:
        if pixels is None:
            return Split(rng.standard_normal((n, *shape), dtype=np.float32))
        mean = np.asarray(pixels[0], dtype=np.float32)[:, None, None]
        std = np.asarray(pixels[1], dtype=np.float32)[:, None, None]
        x = (rng.random((n, *shape), dtype=np.float32) - mean) / std
        return Split(x.astype(np.float32), None, None, tuple({"image_id": i} for i in range(n)))

    calib = draw()
    ev = draw()
    return (
        replace(calib, ids=tuple(f"synthetic-calib/{i}" for i in range(n))),
        replace(ev, ids=tuple(f"synthetic/{i}" for i in range(n))),
    )


#: How errors and the card describe seeded synthetic inputs.
SYNTHETIC_ORIGIN = "seeded synthetic inputs (the job gives no data), drawn apart from the eval inputs"


def carved_origin(cfg: DataConfig, stratified: bool) -> str:
    """How :func:`carve` chose the calibration images, in words."""
    how = "stratified by class" if stratified else "at random"
    return f"carved from the eval images: {cfg.calib_fraction:.0%} {how}, seed {cfg.seed}"
